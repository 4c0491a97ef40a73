"""A job's photos as the classifier sees them: the features of each photo's one hand.

``adapt`` and ``compare`` read the jobs' photos again, through the workers' own path
(:class:`files.reading.JobFolder`, :func:`serving.photo.read_photo`, the hand finder,
:func:`serving.hands.features.hand_features`): the stored rows keep the landmarks in two
dimensions only, and the features need the third. A photo with no hand or several is left
out (a review names one digit for the whole photo), and counted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from signdigits.db.models import Image, Job
from signdigits.files.reading import ImageError, JobFolder
from signdigits.serving.model_input import FEATURE_COUNT

Progress = Callable[[int, int], None]


@dataclass
class JobPhotos:
    """Photos with exactly one hand: their image ids, features and (when known) labels."""

    image_ids: list[int] = field(default_factory=list)
    x: np.ndarray = field(default_factory=lambda: np.zeros((0, FEATURE_COUNT), np.float32))
    digits: list[int | None] = field(default_factory=list)  # the review's digit, if any
    left_out: dict[str, int] = field(default_factory=dict)  # why -> how many

    def __len__(self) -> int:
        return len(self.image_ids)


def read_job_photos(items: Iterable[tuple[Image, Job, int | None]], *, total: int,
                    hand_models: Path, max_bytes: int, allowed_roots: list[Path],
                    max_pixels: int, progress: Progress | None = None) -> JobPhotos:
    """The features of each (image, its job, its label) with exactly one hand."""
    from signdigits.serving.hands.features import hand_features
    from signdigits.serving.hands.finder import HandFinder
    from signdigits.serving.photo import read_photo

    finder = HandFinder(hand_models)
    folders: dict[str, JobFolder] = {}
    photos = JobPhotos()
    rows: list[np.ndarray] = []
    for done, (image, job, digit) in enumerate(items, start=1):
        folder = folders.setdefault(job.id, JobFolder(job.root, allowed_roots=allowed_roots))
        try:
            relative = os.fsdecode(image.raw_path) if image.raw_path else image.path
            photo = read_photo(folder.read(relative, max_bytes=max_bytes), max_pixels=max_pixels)
            hands = finder.find(photo.image)
        except (ImageError, OSError):
            hands = None
        why = ("unreadable now" if hands is None else "no hand" if not hands
               else "several hands" if len(hands) > 1 else None)
        if why is not None or hands is None:
            photos.left_out[why or "?"] = photos.left_out.get(why or "?", 0) + 1
        else:
            photos.image_ids.append(image.id)
            photos.digits.append(digit)
            rows.append(hand_features(hands[0].landmarks.points))
        if progress:
            progress(done, total)
    if rows:
        photos.x = np.stack(rows).astype(np.float32)
    return photos
