"""A photo read: the hands in it, and the digit each one signs.

:class:`HandReader` is what ``predict``, the workers, the web's ``/try`` (through a
worker), ``bench`` and training share: :mod:`serving.photo` decodes, :mod:`serving.hands`
finds the hands and their landmarks, :mod:`serving.hands.features` describes each one,
and the :class:`~serving.classifier.Classifier` reads the description. A photo where no
hand is found is still a reading: no digit, confidence 0, and ``how`` says why.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from signdigits.config.settings import DEFAULT_MAX_IMAGE_PIXELS
from signdigits.serving.classifier import Classifier, Prediction
from signdigits.serving.hands.features import hand_features
from signdigits.serving.hands.finder import MAX_HANDS, TILE_GRIDS, Hand, HandFinder, Settled
from signdigits.serving.hands.landmarks import Landmarks, hand_rotation
from signdigits.serving.hands.order import reading_order
from signdigits.serving.photo import ImageSource, Photo, read_photo
from signdigits.serving.served import check_trained_on

NO_HAND = "no hand found"
READ_WHOLE = "hand landmarks, whole photo"  # the hand filled the photo: no palm detector
READ_WHOLE_ONCE = "hand landmarks, whole photo, placed once"  # and settled at once (below)
READ_HAND = "hand landmarks"
READ_PADDED = "hand landmarks, on a padded copy"
# Said last when a hand read is unlike every training hand: read, below any threshold.
UNFAMILIAR = "unlike the training hands"
# A photo decoded reduced (serving.photo: about 240 pixels on its shorter side) in which
# no hand was found, or a hand under SMALL_HAND_SIDE decoded pixels, is decoded again with
# at least CLOSER_SIDE pixels on its shorter side and searched once more. A hand a
# twentieth of a 1280 x 960 frame wide is 16 pixels at the first decode: too few for the
# palm detector's tiles and the landmarks, and often read wrong when found at all. Close-ups
# shrunk onto 1280 x 960 (`python -m signdigits.bench.hand_size --shares
# 0.05,0.06,0.075,0.1`, 20 a share), the hand about 3, 3.6, 4.5 and 6% of the width: read
# right in 6, 9, 18 and 19, against 1, 2, 13 and 18 without the closer look; from 9% of
# the width on, 20 of 20 either way (the closer decode then searched in 3 x 3 to 7 x 7
# tiles; now finer ones, CLOSER_GRIDS). Paid only by those photos: a photo with no hand is
# searched twice, about 2.5 CPU-s here.
SMALL_HAND_SIDE = 16
CLOSER_SIDE = 960
# A hand found at SMALL_HAND_SIDE up to CLOSE_HAND_SIDE decoded pixels is placed in a
# square enlarged more than twice into the landmark model's 224 pixels: the photo is decoded
# closer and every hand placed again there, from its own points (two landmark passes a
# hand, no search). Close-ups shrunk onto 1280 x 960, 60 a share (`python -m
# signdigits.bench.hand_size FOLDER --count 60 --shares 0.1,0.125,0.15,0.2,0.25,0.3`: the
# hand 18-56 pixels at the first decode), read right, before -> after: cyril 57, 57, 58,
# 60, 60, 59 -> 59, 60, 59, 60, 60, 60; modi 55, 57, 58, 58, 60, 60 -> 55, 59, 59, 59, 60,
# 60 (one placement instead of two: cyril 57 at 0.1; up to 32 pixels only: cyril 59 at
# 0.3, modi 58 at 0.2). About 15 CPU-ms a photo so placed, which took 0.1-0.3 s to find
# the hand in; no hand in modi's or cyril's photos is under 97 pixels.
CLOSE_HAND_SIDE = 64
# A photo decoded reduced in which nothing else found a hand is searched in these tile
# grids only: a hand not found in 5 x 5 tiles is under about a twentieth of the photo's
# width, and the closer decode that follows searches the finer grids (CLOSER_GRIDS) with
# 16 times the pixels. Composites (bench.hand_size's, hands 3-6% of the width, 25 a share
# and set at 0.05-0.1): with the 7 x 7 tiles here too, read right the same but one of 200
# (modi at 0.06: 6 -> 5) for a third more palm-detector passes a photo.
FIRST_LOOK_GRIDS = (3, 5)
# The closer decode is searched in the grids the first look left, finest last: its 3 x 3
# and 5 x 5 tiles would show the palm detector a hand at the size it saw it at first.
# Close-ups shrunk onto a picture (bench.hand_size's composites; scratch A/B of these grids
# against 3 x 3, 5 x 5 and 7 x 7 there, 30 a share), read right before -> after: on 1280 x
# 960, the hand 3, 3.9 and 4.8% of the width, modi 1, 12, 20 -> 17, 27, 29 and cyril 9,
# 20 -> 25, 28 (the first two); on a webcam's 640 x 480, the hand 4.8, 6 and 7.5%, modi 7,
# 17, 28 -> 13, 27, 30 and cyril 24, 28, 30 -> 27, 30, 30 (with finder.TILE_PRESENCE,
# added after: modi 12, 26, 30). A photo with no hand pays the 9 x 9 and 11 x 11 tiles:
# 2.6 CPU-s instead of 1.2 here (docs/model.md, Limits).
CLOSER_GRIDS = tuple(grid for grid in TILE_GRIDS if grid not in FIRST_LOOK_GRIDS)
# A hand filling the photo is placed once on the photo's square, then again on the square
# derived from those points (serving.hands.finder). When the classifier gives the first
# placement's digit at least this confidence, the second is not made: a landmark pass,
# about 5 of a photo's 13 CPU-ms here. Scratch study of both placements of every
# whole-photo hand, 2026-12-07: the studio's signer-grouped out-of-fold classifiers (1,569
# photos) at 0.999 changed one answer, to right, and left 3 wrong answers above 0.95 as
# before (one of them another photo); the test split, modi and cyril (278, 470 and 473
# photos, the shipped model) no answer and nothing above or below the threshold. The
# first placement alone settled 59% of the studio's, 37% of modi's and 62% of cyril's.
# The classifier is trained on the second placement only.
SETTLED_CONFIDENCE = 0.999
# ASL's digits are signed with the fingers up: turned at most 53 degrees from upright in
# the studio's photos, 34 in modi's, 14 in cyril's (serving.hands.landmarks.hand_rotation).
# A hand whose fingers point below the horizontal is resting (hanging by someone's side,
# on a table), and the classifier, whose features are turned upright, reads it as a digit
# all the same, at 0.97-1.0 for foreign close-ups turned 90-180 degrees beside an upright
# one. So beside hands that point up it is set aside, not read; when every hand found
# points down (a resting hand whose signing one was missed, or a photo stored upside
# down) they are read, below any threshold.
SIGNING_TILT = math.radians(90)


def points_up(hand: Hand) -> bool:
    """Whether ``hand`` is held as a digit is signed: fingers above the horizontal."""
    return abs(hand_rotation(hand.landmarks.points)) <= SIGNING_TILT


@dataclass(frozen=True)
class Chosen:
    """Which of a photo's hands are read (:func:`choose_hands`)."""

    read: list[int]  # indices into the hands found, in reading order
    more_hands: bool  # the finder returned more than the cap: the photo may hold more
    set_aside: int  # hands pointing down beside ones pointing up: not read
    pointing_down: bool  # every hand found points down: read, below any threshold


def choose_hands(surest_first: Sequence[Hand], max_hands: int) -> Chosen:
    """The hands read, as workers, predict and training's rebuilt rows all choose them: those
    pointing up, the surest ``max_hands``, in reading order; only when none points up,
    those pointing down (:data:`SIGNING_TILT`)."""
    up = [i for i, hand in enumerate(surest_first) if points_up(hand)]
    signing = up or list(range(len(surest_first)))
    kept = signing[:max_hands]
    order = reading_order([surest_first[i].box for i in kept])
    return Chosen([kept[i] for i in order], more_hands=len(surest_first) > max_hands,
                  set_aside=len(surest_first) - len(up) if up else 0,
                  pointing_down=bool(surest_first) and not up)


@dataclass(frozen=True)
class HandReading:
    hand: Hand
    prediction: Prediction

    def box_on(self, photo: Photo) -> list[int]:
        """The hand's box in the photo's own pixels (it was found on the decoded copy)."""
        return [round(v / photo.scale) for v in self.hand.box]


@dataclass(frozen=True)
class Reading:
    hands: list[HandReading]  # in reading order: left to right, rows top to bottom
    more_hands: bool = False  # the photo held more hands than the cap; the surest were read
    set_aside: int = 0  # hands pointing down beside ones pointing up: found, not read
    pointing_down: bool = False  # every hand found points down: read, below any threshold

    def doubtful(self, threshold: float) -> bool:
        """Below the threshold: a person should look. No hand, more hands than were read,
        only hands pointing down, a hand unlike every training hand, or a hand read less
        sure than ``threshold``."""
        return (not self.hands or self.more_hands
                or any(self.hand_doubtful(h, threshold) for h in self.hands))

    def hand_doubtful(self, hand: HandReading, threshold: float) -> bool:
        """One hand read below the threshold: every hand when all point down, one unlike
        every training hand, or one read less sure than ``threshold``."""
        return (self.pointing_down or hand.prediction.unfamiliar
                or hand.prediction.confidence < threshold)

    @property
    def unfamiliar(self) -> bool:
        """A hand read is unlike every hand the model trained on (serving.familiar)."""
        return any(h.prediction.unfamiliar for h in self.hands)

    @property
    def digits(self) -> str:
        """The digits signed, in reading order ("407"); "" without a hand."""
        return "".join(str(h.prediction.digit) for h in self.hands)

    @property
    def answer(self) -> HandReading | None:
        """The photo's one hand; None for no hand or several (``digits`` reads those)."""
        return self.hands[0] if len(self.hands) == 1 else None

    @property
    def confidence(self) -> float:
        """The least sure hand's confidence: a photo is as sure as its weakest reading."""
        return min((h.prediction.confidence for h in self.hands), default=0.0)

    @property
    def how(self) -> str:
        return self._route() + (", pointing down" if self.pointing_down else "") + (
            f", {self.set_aside} more pointing down, not read" if self.set_aside else "") + (
            f", {UNFAMILIAR}" if self.unfamiliar else "")

    def _route(self) -> str:
        if not self.hands:
            return NO_HAND
        if len(self.hands) > 1:
            cut = " (the photo holds more: SIGNDIGITS_MAX_HANDS)" if self.more_hands else ""
            return f"{READ_HAND}, {len(self.hands)} hands{cut}"
        hand = self.hands[0].hand
        if hand.whole_photo:
            return READ_WHOLE_ONCE if hand.placed_once else READ_WHOLE
        return READ_PADDED if hand.padded else READ_HAND


class Closer(Enum):
    """What a photo's first hands call for on a closer decode (:func:`closer_step`)."""

    SEARCH = "search"  # none, or one under SMALL_HAND_SIDE: search the closer decode
    PLACE = "place"  # the smallest under CLOSE_HAND_SIDE: place the same hands again on it


def closer_step(boxes: list, *, scale: float = 1.0) -> Closer | None:
    """What hands found with these boxes (x0, y0, x1, y1; ``scale`` decoded pixels per box
    unit) call for on a closer decode; None: they are read where they were found."""
    if not boxes:
        return Closer.SEARCH
    smallest = min(max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes) * scale
    if smallest < SMALL_HAND_SIDE:
        return Closer.SEARCH
    return Closer.PLACE if smallest < CLOSE_HAND_SIDE else None


def closer_look(source: ImageSource, photo: Photo, *, max_pixels: int) -> Photo | None:
    """``source`` decoded again with more of its pixels than ``photo`` (its decode), or
    None when ``photo`` has all of them already."""
    if photo.scale >= 1:
        return None
    if not isinstance(source, (bytes, str, Path)):
        source.seek(0)  # a file object read once already
    closer = read_photo(source, max_pixels=max_pixels, min_side=CLOSER_SIDE)
    return closer if closer.image.width > photo.image.width else None


def closer_is_kept(first: int, closer: int) -> bool:
    """The closer look's hands replace the first ones unless it found fewer (a hand the
    first saw, lost in the larger picture, or one the landmark model is not sure of when
    placed again)."""
    return closer >= first


class FindsHands(Protocol):
    """Finds a photo's hands and places found ones again: a :class:`HandFinder`, the
    worker's one-finder-per-decode-thread pool, or the :class:`HandReader` over either."""

    def find(self, image: Image.Image, *, grids: Sequence[int] | None = None) -> list[Hand]: ...

    def place_closer(self, image: Image.Image, hand: Hand, factor: float) -> Hand | None: ...


def placed_closer(finder: FindsHands, image: Image.Image, hands: list[Hand],
                  factor: float) -> list[Hand]:
    """``hands``, found on a decode ``factor`` times smaller than ``image``, placed again on
    ``image``; without those the landmark model is no longer sure of."""
    return [hand for hand in (finder.place_closer(image, h, factor) for h in hands) if hand]


def first_look(finder: FindsHands, photo: Photo) -> list[Hand]:
    """The hands found on ``photo`` as first decoded: a photo decoded reduced is searched
    in the :data:`FIRST_LOOK_GRIDS` only (:func:`look_again` searches a closer one)."""
    return finder.find(photo.image, grids=None if photo.scale >= 1 else FIRST_LOOK_GRIDS)


def closer_search(finder: FindsHands, image: Image.Image) -> list[Hand]:
    """The hands found on a photo's closer decode (or on its first one, when it has no more
    pixels to give), searched in the tile grids :func:`first_look` left."""
    return finder.find(image, grids=CLOSER_GRIDS)


def look(finder: FindsHands, source: ImageSource, *,
         max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[Photo, list[Hand]]:
    """``source`` decoded and its hands found, as every reader of photos finds them: once
    more closer when none or a small one was found (:func:`look_again`). The hands are in
    the pixels of the photo returned with them. Raises :class:`ImageError` for a file
    that is not an image."""
    photo = read_photo(source, max_pixels=max_pixels)
    return look_again(finder, source, photo, first_look(finder, photo), max_pixels=max_pixels)


def look_again(finder: FindsHands, source: ImageSource, photo: Photo, hands: list[Hand], *,
               max_pixels: int) -> tuple[Photo, list[Hand]]:
    """The hands found on ``photo`` (``source`` decoded, by :func:`first_look`), or those
    of a closer decode when they call for one (:func:`closer_step`,
    :func:`closer_is_kept`): searched there, or the same hands placed again there; with the
    photo they are in. For a caller that times the first decode apart."""
    step = closer_step([h.box for h in hands])
    if step is None:
        return photo, hands
    closer = closer_look(source, photo, max_pixels=max_pixels)
    if closer is None:  # no more pixels to give: the grids first_look left are searched here
        if step is not Closer.SEARCH or photo.scale >= 1:
            return photo, hands
        again = closer_search(finder, photo.image)
        return photo, again if closer_is_kept(len(hands), len(again)) else hands
    if step is Closer.SEARCH:
        again = closer_search(finder, closer.image)
    else:
        again = placed_closer(finder, closer.image, hands, closer.image.width / photo.image.width)
    return (closer, again) if closer_is_kept(len(hands), len(again)) else (photo, hands)


class ReaderFinder(FindsHands, Protocol):
    """What a :class:`HandReader` finds hands with: a :class:`HandFinder`, or the worker's
    one-finder-per-decode-thread pool."""

    folder: Path
    model_hashes: dict[str, str]
    max_hands: int  # find() returns one more when the photo holds more, as the evidence

    def find(self, image: Image.Image, settled: Settled | None = None, *,
             grids: Sequence[int] | None = None) -> list[Hand]: ...


class HandReader:
    """The hand finder and the digit classifier of one process (neither is fork-safe)."""

    def __init__(self, classifier: Classifier, finder: ReaderFinder) -> None:
        check_trained_on(classifier.info, finder.model_hashes, finder.folder)
        self.classifier = classifier
        self.finder = finder
        self.classify_seconds = 0.0

    @classmethod
    def from_folder(cls, classifier: Classifier, hand_models: Path, *, threads: int = 1,
                    max_hands: int = MAX_HANDS) -> HandReader:
        """A reader with a finder of its own, on the hand models in ``hand_models``."""
        return cls(classifier, HandFinder(hand_models, threads=threads, max_hands=max_hands))

    def find(self, image: Image.Image, *, grids: Sequence[int] | None = None) -> list[Hand]:
        """The hands in ``image``, as served: a whole-photo hand the classifier settles at
        its first placement (:meth:`settles`) is placed once."""
        return self.finder.find(image, self.settles, grids=grids)

    def place_closer(self, image: Image.Image, hand: Hand, factor: float) -> Hand | None:
        """``hand`` placed again on a closer decode (:meth:`HandFinder.place_closer`)."""
        return self.finder.place_closer(image, hand, factor)

    def settles(self, landmarks: Landmarks) -> bool:
        """Whether the classifier reads these points' digit at :data:`SETTLED_CONFIDENCE`
        or more. Called from the decode threads: the runtimes' sessions are thread-safe."""
        features = hand_features(landmarks.points)[np.newaxis]
        return float(self.classifier.probabilities(features).max()) >= SETTLED_CONFIDENCE

    def classify(self, found: list[list[Hand]]) -> list[Reading]:
        """One model call for the hands of many photos; one reading per photo."""
        started = time.thread_time()
        hands = [hand for photo_hands in found for hand in photo_hands]
        features = np.stack([hand_features(h.landmarks.points) for h in hands]) if hands \
            else np.zeros((0, self.classifier.feature_count), np.float32)
        predictions = iter(self.classifier.classify(features))
        readings = [self._reading([HandReading(hand, next(predictions)) for hand in hands])
                    for hands in found]
        self.classify_seconds += time.thread_time() - started
        return readings

    def _reading(self, surest_first: list[HandReading]) -> Reading:
        chosen = choose_hands([h.hand for h in surest_first], self.finder.max_hands)
        return Reading([surest_first[i] for i in chosen.read], more_hands=chosen.more_hands,
                       set_aside=chosen.set_aside, pointing_down=chosen.pointing_down)

    def read(self, photo: Photo) -> Reading:
        """The photo as decoded, searched in every tile grid and not decoded closer (the
        benches that time the finder alone); :meth:`look` reads a photo as a batch does."""
        return self.classify([self.find(photo.image)])[0]

    def look(self, source: ImageSource, *,
             max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[Photo, Reading]:
        """``source`` decoded, its hands found (closer when none or a small one was:
        :func:`look`) and read; the photo the hands were found on."""
        photo, hands = look(self, source, max_pixels=max_pixels)
        return photo, self.classify([hands])[0]
