"""A photo read: the hands in it, and the digit each one signs.

:class:`HandReader` is what ``predict``, the workers, the web's ``/try`` (through a
worker), ``bench`` and training share: :mod:`serving.photo` decodes, :mod:`serving.hands`
finds the hands and their landmarks, :mod:`serving.hands.features` describes each one,
and the :class:`~serving.classifier.Classifier` reads the description. A photo where no
hand is found is still a reading: no digit, confidence 0, and ``how`` says why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from signdigits.serving.classifier import Classifier, Prediction
from signdigits.serving.hands.features import hand_features
from signdigits.serving.hands.finder import MAX_HANDS, Hand, HandFinder
from signdigits.serving.hands.order import reading_order
from signdigits.serving.photo import Photo
from signdigits.serving.served import check_trained_on

NO_HAND = "no hand found"
READ_WHOLE = "hand landmarks, whole photo"  # the hand filled the photo: no palm detector
READ_HAND = "hand landmarks"
READ_PADDED = "hand landmarks, on a padded copy"


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
        if not self.hands:
            return NO_HAND
        if len(self.hands) > 1:
            cut = " (the photo holds more: SIGNDIGITS_MAX_HANDS)" if self.more_hands else ""
            return f"{READ_HAND}, {len(self.hands)} hands{cut}"
        hand = self.hands[0].hand
        return READ_WHOLE if hand.whole_photo else READ_PADDED if hand.padded else READ_HAND


class FindsHands(Protocol):
    """A :class:`HandFinder`, or the worker's one-finder-per-decode-thread pool."""

    folder: Path
    model_hashes: dict[str, str]
    max_hands: int  # find() returns one more when the photo holds more, as the evidence

    def find(self, image: Image.Image) -> list[Hand]: ...


class HandReader:
    """The hand finder and the digit classifier of one process (neither is fork-safe)."""

    def __init__(self, classifier: Classifier, finder: FindsHands) -> None:
        check_trained_on(classifier.info, finder.model_hashes, finder.folder)
        self.classifier = classifier
        self.finder = finder
        self.classify_seconds = 0.0

    @classmethod
    def from_folder(cls, classifier: Classifier, hand_models: Path, *, threads: int = 1,
                    max_hands: int = MAX_HANDS) -> HandReader:
        """A reader with a finder of its own, on the hand models in ``hand_models``."""
        return cls(classifier, HandFinder(hand_models, threads=threads, max_hands=max_hands))

    def find(self, image: Image.Image) -> list[Hand]:
        return self.finder.find(image)

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
        kept = surest_first[:self.finder.max_hands]
        order = reading_order([h.hand.box for h in kept])
        return Reading([kept[i] for i in order],
                       more_hands=len(surest_first) > self.finder.max_hands)

    def read(self, photo: Photo) -> Reading:
        return self.classify([self.find(photo.image)])[0]
