"""Hands in a photo, start to finish.

1. **The whole photo.** The landmark model is shown the photo itself (its square around
   the centre). When it is sure a hand fills it (a close-up, a studio crop: the hand's
   points span at least :data:`SUBJECT_SHARE` of the photo's longer side), the points
   are placed again on the square MediaPipe derives from them, and that is the hand: the
   palm detector, 60% of the cost, is skipped. When the classifier is already all but
   certain of the first placement's digit (the reader's ``settled``), the second is
   skipped too: it would not change the answer (:mod:`serving.reader` says how that was
   measured). On the dataset's tight crops the whole photo also reads better than the
   palm route (99.5% against 97.3% right out of fold), whose 2.6x square runs off a
   picture that cuts the wrist. A smaller hand may have company (a group, a collage), so
   the photo goes on to the palm detector.
2. **Palms.** Otherwise the palm detector finds the palms, the landmark model places
   the points in each palm's square, and again in the square derived from them. A photo
   wider (or taller) than 3:2 is searched in overlapping square windows along its longer
   side, one detector pass each: letterboxed whole into the detector's 192 x 192, four
   people side by side were too small for it. A hand seen in two windows is kept once.
   At most :data:`MAX_WINDOWS` windows, longer than square past that: a 6000 x 2 picture
   was 3,000 windows and a minute of a worker.
3. **A padded copy.** When no palm gives a hand, a photo searched in one window is
   searched again on a canvas 25%, then 50% larger, filled with its edge colour: a hand
   cut off at the border becomes whole enough for the detector. (A panorama is not a
   crop that cut a wrist, and its canvas, padded by its longer side, would be huge.)
4. **Tiles.** Still nothing: the palm detector looks at overlapping tiles of the photo,
   3 x 3, then 5 x 5, 7 x 7, 9 x 9 and 11 x 11, where a small hand is large enough for it
   (it sees the photo at 192 x 192, and misses a palm much under a tenth of that); the
   points are placed on the photo itself, as in step 2. On 80 pieces of the foreign photos
   cut beside the hand (a room, a face, no hand), the 7 x 7 tiles found no hand the
   others had not; the finer ones do find specks, which :data:`TILE_PRESENCE` turns
   away. Costly (up to 285 detector passes), and paid only by photos where nothing else
   found a hand: a wall, a face, a hand under about a twentieth of the photo's width; a
   grid whose tiles would be under :data:`MIN_TILE_SIDE` pixels is skipped. A caller may
   ask for fewer grids: the reader searches a reduced decode in 3 x 3 and 5 x 5 only, and
   a closer one in the rest (serving.reader.first_look, closer_search), where the small
   hand has the pixels these finer tiles need.

The searches and first placements run the lite landmark model; the second placement,
whose points the classifier reads, runs the full one (2.1x a lite pass, paid once per hand
kept): the classifier trained on its points misread 7 of the dataset's 1,574 photos out of
fold (9 with the lite model's) and 1 of the 279 of its test split (2), and was surer on
the foreign photos (docs/model.md, "What was tried").

A picture under :data:`MIN_PHOTO_SIDE` pixels on a side holds no hand to read, and is not
searched. A hand is kept only where the landmark model is sure there is one (:data:`KEEP_PRESENCE`;
surer for one found in tiles or small in the picture, :data:`TILE_PRESENCE`), so a face, a
wall, a hand-sized blur or an arm cut at the picture's edge gives no hand rather than a
guess.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from signdigits.serving.hands.landmarks import (
    MIN_PRESENCE,
    Landmarks,
    place_landmarks,
    region_from_landmarks,
)
from signdigits.serving.hands.models import (
    LANDMARK_MODEL,
    PALM_MODEL,
    PLACING_MODEL,
    check_models,
)
from signdigits.serving.hands.palm import Palm, Region, find_palms, hand_region
from signdigits.serving.hands.runtime import TfliteModel

MAX_HANDS = 8  # the default of SIGNDIGITS_MAX_HANDS
# The whole-photo hand is the photo's only subject when its points span this share of the
# photo's longer side: 99% of the webcam close-ups' hands span 0.37 or more; one of two
# people side by side in a 4:3 frame, or of a collage, spans less.
SUBJECT_SHARE = 0.35
# Windows: a photo up to 3:2 is searched whole; a longer one in squares of its shorter
# side that overlap by at least a quarter, so a hand on a seam is whole in one of them.
MAX_WINDOW_ASPECT = 1.5
_WINDOW_OVERLAP = 0.25
MAX_WINDOWS = 24  # squares up to about 18:1; a longer picture, longer windows
# The landmark model reads a hand in 224 x 224; one in fewer pixels than this a side has
# nothing left to read (the dataset's crops are 100 x 100).
MIN_PHOTO_SIDE = 32
# Of the longer side, added on every side, tried in turn when no palm gave a hand.
PADDINGS = (0.25, 0.5)
# Tiles a side, tried in turn when still no hand: each tile 1.5 / n of the photo's side,
# one n-th apart, so neighbours overlap by a third of a tile and a hand on a border is
# whole in one of them.
TILE_GRIDS = (3, 5, 7, 9, 11)
_TILE_SPAN = 1.5
# A grid whose tiles would be narrower than this many decoded pixels is not tried: the
# hand in it could not be read (a 100 x 100 crop is searched in 3 x 3 tiles only).
MIN_TILE_SIDE = 48
# Two boxes are one hand seen twice (from two palms, windows or tiles) when they overlap
# by more than half their union, or one lies mostly inside the other (a hand cut at a
# window's edge seen again whole).
_SAME_HAND = 0.5
_INSIDE = 0.7
# How sure the landmark model must be that a hand fills the whole photo for the palm
# detector to be skipped: at 0.9, 94% of modi's and 99% of cyril's webcam photos.
WHOLE_PHOTO_PRESENCE = 0.9
# How sure it must be, at the second placement, for a hand to be kept. At 0.5 (the model's
# own cut) 6 of 80 pieces of the foreign photos cut beside the hand (a face, a room) gave
# a "hand" at 0.56-0.75, and the classifier read 5 of them at 0.97-1.0: confidently wrong.
# Real hands: the lowest of the foreign photos' 1,000 was 0.959, of the studio's 1,852
# crops 0.795 (one, then 0.884; the rest above 0.9). Small hands: TILE_PRESENCE. (Measured
# with the lite model at the second placement; with the full one there, every hand of the
# foreign photos and the same 1,851 of the studio's 1,853 are kept.)
KEEP_PRESENCE = 0.8
# A hand found only in tiles is small in the photo, placed from few pixels: it is kept from
# this presence. Three "hands" the 9 x 9 and 11 x 11 tiles found, the real one missed, in
# bench.drift's `webcam` copies of modi (16 to 28 pixels long: a wristband, a fold of cloth;
# one read as 5 at 0.998) were 0.81-0.85 sure to the lite model at the second placement;
# of 301 hands 3-6% of a picture's width (bench.hand_size's composites) all but two were
# 0.93 or more sure, and of those two the one at 0.88 was read wrong. The full model, which
# places the second time now, is surer of both: 0.914 of the wristband of modi 2/20's copy
# (tests/test_small_hands.py), 0.967 and more of the 106 hands it found in 120 composites
# 5-7.5% wide (cyril's and modi's, seed 0; 0.967 the one read wrong).
TILE_PRESENCE = 0.95
# A hand spanning less than this share of the picture's longer side is small: kept from
# TILE_PRESENCE however it was found. In strips cut beside the signing hand of modi's
# photos (bench.beside_hand), the forearm at a strip's edge was found in windows, not in
# tiles, 5-6.3% of the strip, the full landmark model 0.835-0.955 sure of it; the
# classifier read 3 of those 9 as a 5 at 0.997-1.0. Real hands of that size: 0.967 and
# more (above); of the studio's and the foreign photos' hands none is under 12%.
SMALL_SHARE = 0.1

# Whether the hand's first placement on the whole photo is settled: given by the reader
# (serving.reader.HandReader.settles), which asks the classifier. Without it (training)
# the points are always placed twice.
Settled = Callable[[Landmarks], bool]


@dataclass(frozen=True)
class Hand:
    landmarks: Landmarks  # in the pixels of the picture searched
    region: Region  # the square the landmark model read last
    palm_score: float | None  # None: found on the whole photo, without the palm detector
    padded: bool = False  # found only on a padded copy
    placed_once: bool = False  # its first placement settled it (on the whole photo only)

    @property
    def whole_photo(self) -> bool:
        return self.palm_score is None

    @property
    def box(self) -> tuple[float, float, float, float]:
        """x_min, y_min, x_max, y_max of the 21 points."""
        xy = self.landmarks.points[:, :2]
        x0, y0 = xy.min(axis=0)
        x1, y1 = xy.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)


@dataclass
class StageSeconds:
    """CPU seconds spent per stage, summed over the photos searched (``bench`` prints them)."""

    palms: float = 0.0
    landmarks: float = 0.0
    photos: int = 0


class HandFinder:
    def __init__(self, folder: Path, *, threads: int = 1, max_hands: int = MAX_HANDS) -> None:
        self.folder = folder
        # The reader reads this many; find() returns one more when there is one, so a
        # photo that holds more is flagged, never silently cut.
        self.max_hands = max_hands
        self.model_hashes = check_models(folder)
        self._palms = TfliteModel(folder / PALM_MODEL, threads=threads)
        self._landmarks = TfliteModel(folder / LANDMARK_MODEL, threads=threads)
        # Only for the placement the classifier reads: the searches' many passes stay lite.
        self._placer = TfliteModel(folder / PLACING_MODEL, threads=threads)
        self.seconds = StageSeconds()

    def find(self, image: Image.Image, settled: Settled | None = None, *,
             grids: Sequence[int] | None = None) -> list[Hand]:
        """The hands in ``image`` (RGB), surest first; points in ``image``'s pixels. A hand
        filling the photo whose first placement ``settled`` accepts is not placed again.
        ``grids``: the tiles searched in turn when nothing else found a hand (step 4; None:
        :data:`TILE_GRIDS`), or some of them: the coarse ones for a reduced decode a
        closer one will follow, the fine ones for that closer one (serving.reader.first_look,
        closer_search)."""
        self.seconds.photos += 1
        if min(image.size) < MIN_PHOTO_SIDE:
            return []
        whole = self._whole_photo(image, settled)
        if whole is not None and _is_subject(whole, image):
            return [whole]
        hands = self._search(image, padded=False)
        if not hands and whole is not None:
            hands = [whole]  # the palm detector missed the one hand the landmarks saw
        for padding in PADDINGS if len(windows(image.size)) == 1 else ():
            if hands:
                break
            hands = self.find_padded(image, padding)
        for grid in TILE_GRIDS if grids is None else grids:
            if hands or min(image.size) * _TILE_SPAN / grid < MIN_TILE_SIDE:
                break
            hands = self._search_tiles(image, grid)
        return hands

    def find_padded(self, image: Image.Image, padding: float) -> list[Hand]:
        """The hands of ``image`` searched on a copy with ``padding`` times its longer side
        of its edge colour added around it; points in ``image``'s own pixels."""
        pad = round(max(image.size) * padding)
        canvas = ImageOps.expand(image, border=pad, fill=_edge_colour(image))
        return [_shifted(hand, -pad) for hand in self._search(canvas, padded=True)]

    def _whole_photo(self, image: Image.Image, settled: Settled | None) -> Hand | None:
        return self._filling(image, (0, 0, *image.size), settled)

    def _filling(self, image: Image.Image, box: tuple[int, int, int, int],
                 settled: Settled | None = None) -> Hand | None:
        """The hand filling the square around ``box``'s centre, if the landmark model is
        sure of one there; placed once when it is the photo's subject and ``settled``
        accepts its first placement."""
        started = time.thread_time()
        x0, y0, x1, y1 = box
        square = Region(((x0 + x1) / 2, (y0 + y1) / 2), float(max(x1 - x0, y1 - y0)), 0.0)
        first = place_landmarks(self._landmarks, image, square)
        hand = None
        if first.presence >= WHOLE_PHOTO_PRESENCE:
            once = Hand(first, square, palm_score=None, placed_once=True)
            hand = once if settled is not None and _is_subject(once, image) and settled(first) \
                else self._placed_again(image, first, palm_score=None, padded=False)
        self.seconds.landmarks += time.thread_time() - started
        return hand

    def _search(self, image: Image.Image, *, padded: bool) -> list[Hand]:
        boxes = windows(image.size)
        palms = []
        for box in boxes:
            started = time.thread_time()
            window = image if len(boxes) == 1 else image.crop(box)
            palms += [_moved(palm, box[0], box[1]) for palm in
                      find_palms(self._palms, window, max_palms=self.max_hands + 1)]
            self.seconds.palms += time.thread_time() - started
        hands = self._hands_at(image, palms, padded=padded)
        if len(boxes) > 1:
            # A window that gave no hand may still be filled by one the detector missed
            # (a close-up in a collage): the landmark model is asked, as for a photo.
            for box in boxes:
                if not any(_centre_in(hand.box, box) for hand in hands):
                    hands += [hand for hand in [self._filling(image, box)] if hand]
        return self._distinct(hands)

    def _search_tiles(self, image: Image.Image, grid: int) -> list[Hand]:
        started = time.thread_time()
        width, height = image.size
        tile_w, tile_h = width * _TILE_SPAN / grid, height * _TILE_SPAN / grid
        palms = []
        for column in range(grid):
            for row in range(grid):
                left = min(max(0.0, (column + 0.5) * width / grid - tile_w / 2), width - tile_w)
                top = min(max(0.0, (row + 0.5) * height / grid - tile_h / 2), height - tile_h)
                box = (round(left), round(top), round(left + tile_w), round(top + tile_h))
                palms += [_moved(palm, box[0], box[1]) for palm in
                          find_palms(self._palms, image.crop(box), max_palms=self.max_hands + 1)]
        self.seconds.palms += time.thread_time() - started
        return self._distinct([hand for hand in self._hands_at(image, palms, padded=False)
                               if hand.landmarks.presence >= TILE_PRESENCE])

    def _distinct(self, hands: list[Hand]) -> list[Hand]:
        """Surest first, each hand once (seen from two palms, windows or tiles), at most
        ``max_hands`` + 1. Touching or overlapping hands stay two: only boxes overlapping
        by more than half of their union, or one mostly inside the other, are one hand."""
        kept: list[Hand] = []
        for hand in hands:  # surest first
            if not any(_same_hand(hand.box, other.box) for other in kept):
                kept.append(hand)
        return kept[:self.max_hands + 1]

    def _hands_at(self, image: Image.Image, palms: list[Palm], *, padded: bool) -> list[Hand]:
        """Landmarks placed (twice) at each palm; the hands the model is sure of, surest
        first."""
        found = time.thread_time()
        hands = []
        for palm in palms:
            first = place_landmarks(self._landmarks, image, hand_region(palm))
            if first.presence >= MIN_PRESENCE:
                hand = self._placed_again(image, first, palm_score=palm.score, padded=padded)
                if hand is not None:
                    hands.append(hand)
        self.seconds.landmarks += time.thread_time() - found
        hands.sort(key=lambda hand: -hand.landmarks.presence)
        return hands

    def place_closer(self, image: Image.Image, hand: Hand, factor: float) -> Hand | None:
        """``hand``, found on a decode of the same photo ``factor`` times smaller than
        ``image``, placed again on ``image`` without a search: in the square derived from
        its own points, then, as every hand, in the square derived from those; None when
        the landmark model is not sure of a hand there."""
        started = time.thread_time()
        region = region_from_landmarks(hand.landmarks.points[:, :2] * factor)
        first = place_landmarks(self._landmarks, image, region)
        again = None
        if first.presence >= MIN_PRESENCE:
            again = self._placed_again(image, first, palm_score=hand.palm_score,
                                       padded=hand.padded)
        self.seconds.landmarks += time.thread_time() - started
        return again

    def _placed_again(self, image: Image.Image, first: Landmarks, *, palm_score: float | None,
                      padded: bool) -> Hand | None:
        """The points placed again in the square derived from ``first``, by the full
        landmark model: centred and turned on the hand itself, the second placement is the
        one kept (out-of-fold accuracy on the dataset 99.5% with it, 99.2% without), and
        the full model misreads fewer of the studio's close poses than the lite one
        (7 of 1,574 out of fold against 9; docs/model.md)."""
        region = region_from_landmarks(first.points)
        again = Hand(place_landmarks(self._placer, image, region), region, palm_score, padded)
        return again if again.landmarks.presence >= _presence_needed(again, image) else None


def windows(size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The boxes the palm detector is shown: the photo, or squares along its longer side
    (longer than square when squares would be more than :data:`MAX_WINDOWS`)."""
    width, height = size
    short, long = min(size), max(size)
    if long <= short * MAX_WINDOW_ASPECT:
        return [(0, 0, width, height)]
    # The window's length along the longer side: MAX_WINDOWS of this span it, overlapping.
    span = max(short, math.ceil(long / (1 + (MAX_WINDOWS - 1) * (1 - _WINDOW_OVERLAP))))
    count = math.ceil((long - span) / (span * (1 - _WINDOW_OVERLAP))) + 1
    starts = [round(i * (long - span) / (count - 1)) for i in range(count)]
    if width >= height:
        return [(x, 0, x + span, height) for x in starts]
    return [(0, y, width, y + span) for y in starts]


def _centre_in(hand_box: tuple[float, float, float, float],
               box: tuple[int, int, int, int]) -> bool:
    x, y = (hand_box[0] + hand_box[2]) / 2, (hand_box[1] + hand_box[3]) / 2
    return box[0] <= x < box[2] and box[1] <= y < box[3]


def _presence_needed(hand: Hand, image: Image.Image) -> float:
    """How sure the landmark model must be of ``hand`` for it to be kept: a hand small in
    ``image`` (the picture searched) was placed from few pixels, as one found only in
    tiles is, and needs as much."""
    x0, y0, x1, y1 = hand.box
    small = max(x1 - x0, y1 - y0) < SMALL_SHARE * max(image.size)
    return TILE_PRESENCE if small else KEEP_PRESENCE


def _is_subject(hand: Hand, image: Image.Image) -> bool:
    x0, y0, x1, y1 = hand.box
    return max(x1 - x0, y1 - y0) >= SUBJECT_SHARE * max(image.size)


def _moved(palm: Palm, dx: int, dy: int) -> Palm:
    """A palm found on a tile, in the photo's pixels."""
    x0, y0, x1, y1 = palm.box
    return Palm(palm.score, (x0 + dx, y0 + dy, x1 + dx, y1 + dy), palm.keypoints + (dx, dy))


def _same_hand(a: tuple[float, float, float, float], b: tuple[float, float, float, float]
               ) -> bool:
    across = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter = across * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    union = area_a + area_b - inter
    smaller = min(area_a, area_b)
    return (union > 0 and inter / union > _SAME_HAND) or (smaller > 0 and
                                                          inter / smaller > _INSIDE)


def _edge_colour(image: Image.Image) -> tuple[int, int, int]:
    """The median colour of the photo's outermost pixels: a studio wall stays a wall."""
    pixels = np.asarray(image)
    edge = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return tuple(int(v) for v in np.median(edge, axis=0))  # type: ignore[return-value]


def _shifted(hand: Hand, offset: int) -> Hand:
    """A hand found on the padded copy, moved back onto the photo's own pixels."""
    points = hand.landmarks.points.copy()
    points[:, :2] += offset
    landmarks = Landmarks(points, hand.landmarks.presence, hand.landmarks.right)
    centre = (hand.region.center[0] + offset, hand.region.center[1] + offset)
    region = Region(centre, hand.region.side, hand.region.rotation)
    return Hand(landmarks, region, hand.palm_score, hand.padded, hand.placed_once)
