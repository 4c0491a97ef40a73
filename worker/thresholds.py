"""Which threshold flags an image: one rule, for a job and the model that classified it."""

from __future__ import annotations

from signdigits.db.models import Job
from signdigits.serving.artifact import ModelInfo


def flag_threshold(job: Job, model: ModelInfo) -> float:
    """The threshold this worker's model flags the job's images by.

    The job's own, except when no one gave it and this worker serves another model than
    the one its submitter read: that model's calibrated default would flag this one's
    confidences (0.84 against 0.15 between two trainings here), so this model's applies.
    """
    if job.threshold_from_model and job.model_version != model.version:
        return model.default_threshold
    return job.threshold
