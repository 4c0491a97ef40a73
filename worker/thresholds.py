"""Which threshold flags an image: one rule, for a job and the model that classified it;
and, by the same rule, which models read a job and the threshold each applied."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from signdigits.config.settings import Settings
from signdigits.db.models import Job
from signdigits.db.registry import Recorded, model_file, recorded_models, versions_by_job
from signdigits.serving.artifact import (
    ArtifactError,
    ModelInfo,
    read_model_info,
    resolve_model_path,
)


def flag_threshold(job: Job, model: ModelInfo) -> float:
    """The threshold this worker's model flags the job's images by.

    The job's own, except when no one gave it and this worker serves another model than
    the one its submitter read: that model's calibrated default would flag this one's
    confidences (0.84 against 0.15 between two trainings here), so this model's applies.
    """
    if job.threshold_from_model and job.model_version != model.version:
        return model.default_threshold
    return job.threshold


@dataclass(frozen=True)
class ModelRead:
    """A model that classified some of a job's images, and the threshold that flagged them."""

    version: str
    images: int
    threshold: float | None  # None: its model's default is known no more (files gone)


def models_that_read(settings: Settings, session: Session, jobs: list[Job]
                     ) -> dict[str, list[ModelRead]]:
    """Each job's models, most images first: more than one when a model was promoted while
    it ran. The threshold each applied is :func:`flag_threshold`'s: the job's own, except
    for a job whose threshold is its model's default, read by another model than the one
    it was submitted with: that model's default (as its registry figures record it, else
    as its artifact does; None when neither can be read any more)."""
    counts = versions_by_job(session, job_ids=[job.id for job in jobs])
    others = sorted({version for job in jobs if job.threshold_from_model
                     for version, _ in counts[job.id] if version != job.model_version})
    recorded = recorded_models(session, others)
    defaults = {version: _default_threshold(settings, version, recorded.get(version))
                for version in others}
    return {job.id: [ModelRead(version, n, job.threshold
                               if not job.threshold_from_model or version == job.model_version
                               else defaults[version])
                     for version, n in counts[job.id]] for job in jobs}


def thresholds_by_model(settings: Settings, session: Session, job: Job
                        ) -> dict[str, float | None]:
    """Model version -> the threshold that flagged the job's rows it read: what each
    exported row's ``threshold`` column says."""
    reads = models_that_read(settings, session, [job])[job.id]
    return {read.version: read.threshold for read in reads}


def _default_threshold(settings: Settings, version: str, row: Recorded | None) -> float | None:
    """``version``'s default threshold: its registry row's, else its artifact's (a
    registered one, or the configured/shipped default model if it is that version)."""
    if row is not None and row.default_threshold is not None:
        return row.default_threshold
    try:
        path = (model_file(settings.registry_dir, row.file) if row is not None
                else resolve_model_path(settings.model_path))
        info = read_model_info(path)
    except (ArtifactError, OSError):
        return None
    return info.default_threshold if info.version == version else None
