"""Hands in a photo, start to finish.

1. **The whole photo.** The landmark model is shown the photo itself (its square around
   the centre). When it is sure a hand fills it (a close-up, a studio crop), the points
   are placed again on the square MediaPipe derives from them, and that is the hand: the
   palm detector, 60% of the cost, is skipped. On the dataset's tight crops this also
   reads better than the palm route (99.5% against 97.3% right out of fold), whose 2.6x
   square runs off a picture that cuts the wrist.
2. **Palms.** Otherwise the palm detector finds up to four palms, the landmark model
   places the points in each palm's square, and again in the square derived from them.
3. **A padded copy.** When no palm gives a hand, the photo is searched again on a canvas
   25%, then 50% larger, filled with its edge colour: a hand cut off at the border
   becomes whole enough for the detector.
4. **Tiles.** Still nothing: the palm detector looks at overlapping tiles of the photo,
   2 x 2 then 3 x 3, where a small hand is large enough for it (it sees the photo at
   192 x 192, and misses a palm much under a tenth of that); the points are placed on the
   photo itself, as in step 2. On close-ups shrunk onto a 1280 x 960 picture, this took
   hands found from 2 of 20 to 16 of 20 at a fifth of its width, from 0 to 8 at 15%,
   every one read right (``python -m signdigits.bench.hand_size``).
   Costly (13 detector passes), and paid only by photos where nothing else found a hand.

A hand is kept only where the landmark model is sure there is one, so a face, a wall or
a hand-sized blur gives no hand rather than a guess.
"""

from __future__ import annotations

import time
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
from signdigits.serving.hands.models import LANDMARK_MODEL, PALM_MODEL, check_models
from signdigits.serving.hands.palm import Palm, Region, find_palms, hand_region
from signdigits.serving.hands.runtime import TfliteModel

MAX_HANDS = 4
# Of the longer side, added on every side, tried in turn when no palm gave a hand.
PADDINGS = (0.25, 0.5)
# Tiles a side, tried in turn when still no hand: each tile 1.5 / n of the photo's side,
# so neighbours overlap by half a tile and a hand on a border is whole in one of them.
TILE_GRIDS = (2, 3)
_TILE_SPAN = 1.5
_SAME_HAND = 0.5  # IoU of two hands' boxes above which they are one hand seen twice
# How sure the landmark model must be that a hand fills the whole photo for the palm
# detector to be skipped: at 0.9, 94% of modi's and 99% of cyril's webcam photos.
WHOLE_PHOTO_PRESENCE = 0.9


@dataclass(frozen=True)
class Hand:
    landmarks: Landmarks  # in the pixels of the picture searched
    region: Region  # the square the landmark model read last
    palm_score: float | None  # None: found on the whole photo, without the palm detector
    padded: bool = False  # found only on a padded copy

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
    def __init__(self, folder: Path, *, threads: int = 1) -> None:
        self.folder = folder
        self.model_hashes = check_models(folder)
        self._palms = TfliteModel(folder / PALM_MODEL, threads=threads)
        self._landmarks = TfliteModel(folder / LANDMARK_MODEL, threads=threads)
        self.seconds = StageSeconds()

    def find(self, image: Image.Image) -> list[Hand]:
        """The hands in ``image`` (RGB), surest first; points in ``image``'s pixels."""
        self.seconds.photos += 1
        whole = self._whole_photo(image)
        if whole is not None:
            return [whole]
        hands = self._search(image, padded=False)
        for padding in PADDINGS:
            if hands:
                break
            hands = self.find_padded(image, padding)
        for grid in TILE_GRIDS:
            if hands:
                break
            hands = self._search_tiles(image, grid)
        return hands

    def find_padded(self, image: Image.Image, padding: float) -> list[Hand]:
        """The hands of ``image`` searched on a copy with ``padding`` times its longer side
        of its edge colour added around it; points in ``image``'s own pixels."""
        pad = round(max(image.size) * padding)
        canvas = ImageOps.expand(image, border=pad, fill=_edge_colour(image))
        return [_shifted(hand, -pad) for hand in self._search(canvas, padded=True)]

    def _whole_photo(self, image: Image.Image) -> Hand | None:
        started = time.thread_time()
        width, height = image.size
        square = Region((width / 2, height / 2), float(max(width, height)), 0.0)
        first = place_landmarks(self._landmarks, image, square)
        hand = None
        if first.presence >= WHOLE_PHOTO_PRESENCE:
            hand = self._placed_again(image, first, palm_score=None, padded=False)
        self.seconds.landmarks += time.thread_time() - started
        return hand

    def _search(self, image: Image.Image, *, padded: bool) -> list[Hand]:
        started = time.thread_time()
        palms = find_palms(self._palms, image, max_palms=MAX_HANDS)
        self.seconds.palms += time.thread_time() - started
        return self._hands_at(image, palms, padded=padded)

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
                          find_palms(self._palms, image.crop(box), max_palms=MAX_HANDS)]
        self.seconds.palms += time.thread_time() - started
        hands: list[Hand] = []
        for hand in self._hands_at(image, palms, padded=False):  # surest first
            if all(_iou(hand.box, kept.box) <= _SAME_HAND for kept in hands):
                hands.append(hand)
        return hands[:MAX_HANDS]

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

    def _placed_again(self, image: Image.Image, first: Landmarks, *, palm_score: float | None,
                      padded: bool) -> Hand | None:
        """The points placed again in the square derived from ``first``: centred and
        turned on the hand itself, the second placement is the one kept (out-of-fold
        accuracy on the dataset 99.5% with it, 99.2% without)."""
        region = region_from_landmarks(first.points)
        again = place_landmarks(self._landmarks, image, region)
        if again.presence < MIN_PRESENCE:
            return None
        return Hand(again, region, palm_score, padded)


def _moved(palm: Palm, dx: int, dy: int) -> Palm:
    """A palm found on a tile, in the photo's pixels."""
    x0, y0, x1, y1 = palm.box
    return Palm(palm.score, (x0 + dx, y0 + dy, x1 + dx, y1 + dy), palm.keypoints + (dx, dy))


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    across = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter = across * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


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
    return Hand(landmarks, region, hand.palm_score, hand.padded)
