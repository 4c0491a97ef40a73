"""``adapt JOB... --out NAME``: from jobs' reviews to a registered candidate model.

The parent is the model that read most of the jobs' rows (``images.model_version``),
found in the registry or as the default model. The reviewed photos are read again
(training.job_photos: one example per reviewed hand), the dataset the parent was trained
on is replayed (training.hand_features caches its features), training.adapt fine-tunes,
and the pair is registered, not promoted: ``compare`` and ``models promote`` come next.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from signdigits.config.settings import Settings
from signdigits.db.models import ModelRow
from signdigits.db.registry import RegistryError, versions_that_read
from signdigits.db.reviews import reviewed_images
from signdigits.serving.artifact import ModelInfo
from signdigits.training.job_photos import (
    JobPhotos,
    left_out_text,
    read_job_photos,
    review_answer,
)
from signdigits.training.registry import add_to_registry, model_of_version, training_data_of

Stage = Callable[[str, int, int], None]  # stage name, done, total


@dataclass(frozen=True)
class AdaptResult:
    row: ModelRow
    info: ModelInfo
    reviewed: JobPhotos
    seconds: float
    figures: dict[str, Any]


def parent_model(settings: Settings, session: Session, job_ids: list[str]) -> ModelInfo:
    """The model that read most of these jobs' rows; RegistryError (one line) if none did
    or its files cannot be read here (gone from SIGNDIGITS_MODELS_DIR, say)."""
    from signdigits.serving.artifact import ArtifactError

    counts = versions_that_read(session, job_ids=job_ids)
    if not counts:
        raise RegistryError("the jobs have no classified image yet: nothing to adapt from")
    try:
        return model_of_version(settings, session, counts[0][0])
    except ArtifactError as exc:
        raise RegistryError(f"the parent model {counts[0][0]} cannot be read: {exc}") from None


def reviewed_photos(settings: Settings, session: Session, job_ids: list[str], *,
                    allowed_roots: list[Path], stage: Stage | None = None) -> JobPhotos:
    """The features of the jobs' reviewed hands: of each photo whose current review is a
    digit, and of each hand answered with a digit in a photo reviewed hand by hand. A
    photo written after its review is left out, by export-reviews' own check."""
    from signdigits.serving.hands.models import models_dir

    reviews = list(reviewed_images(session, job_ids=job_ids))
    items = [(image, job, review_answer(review)) for image, job, review in reviews]
    return read_job_photos(items, total=len(items),
                           reviewed_at={image.id: review.reviewed_at
                                        for image, _, review in reviews},
                           hand_models=models_dir(settings.hand_models_dir),
                           max_bytes=settings.max_file_bytes, allowed_roots=allowed_roots,
                           max_pixels=settings.max_image_pixels, max_hands=settings.max_hands,
                           progress=(lambda n, t: stage("reading the reviewed photos", n, t))
                           if stage else None)


def adapt_jobs(settings: Settings, sessions: sessionmaker[Session], job_ids: list[str], *,
               name: str, data: Path | None, allowed_roots: list[Path],
               report: Callable[[str], None] = print,
               stage: Stage | None = None) -> AdaptResult:
    from signdigits.db.registry import find_model, model_name
    from signdigits.training.adapt import adapt
    from signdigits.training.data import load_labelled

    name = model_name(name)  # before any work: refused at the end, it was all lost
    started = time.monotonic()
    with sessions() as session:
        try:
            find_model(session, name)
        except RegistryError:
            pass
        else:
            raise RegistryError(f"a model named {name!r} is already registered; choose another")
        parent = parent_model(settings, session, job_ids)
        photos = reviewed_photos(settings, session, job_ids, allowed_roots=allowed_roots,
                                 stage=stage)
    if not len(photos):
        left = left_out_text(photos.left_out)
        raise RegistryError("no reviewed hand to learn from in these jobs"
                            + (f" (left out: {left})" if left else "") + ": review some first")
    data = data or training_data_of(parent)
    if data is None:
        raise RegistryError(f"the data model {parent.version} was trained on is not found "
                            "here: give it with --data")
    dataset = load_labelled(data, progress=(lambda n, t: stage("reading the dataset", n, t))
                            if stage else None)
    digit_to_class = {d: i for i, d in enumerate(parent.class_to_digit)}
    classes = np.array([digit_to_class[int(d)] for d in photos.digits if d is not None])
    # "reviews": the examples, one per reviewed hand (the Models page and `models list`
    # show it); "reviewed_photos": the photos they are on; "left_out": job_photos' reasons.
    lineage = {"jobs": job_ids, "reviews": len(photos), "reviewed_hands": len(photos),
               "reviewed_photos": photos.photos, "dataset": str(Path(data).absolute()),
               "left_out": photos.left_out}
    command = "signdigits " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "adapt"
    with tempfile.TemporaryDirectory(prefix="signdigits-adapt-") as tmp:
        adapted = adapt(parent, dataset, photos.x, classes, out=Path(tmp) / "candidate.keras",
                        lineage=lineage, command=command, report=report,
                        step=(lambda n, t: stage("fine-tuning", n, t)) if stage else None)
        seconds = time.monotonic() - started
        figures = {**adapted.figures, "adapt_seconds": round(seconds, 1)}
        row = add_to_registry(settings, sessions, adapted.info.path, name=name,
                              parent=parent.version, figures=figures)
    return AdaptResult(row, adapted.info, photos, seconds, figures)
