"""``worker.thresholds.flag_threshold``: which threshold flags a job's images."""

from __future__ import annotations

from pathlib import Path

import pytest

from signdigits.db.models import Job
from signdigits.serving.artifact import ModelInfo
from signdigits.worker.thresholds import flag_threshold

MODEL_DEFAULT = 0.84


# (the job's threshold came from the submitter's model?, that model, this worker's) -> used
@pytest.mark.parametrize(("from_model", "submitted_with", "served", "used"), [
    (True, "v1", "v1", 0.15),  # the model's default, read by the submitter: the job's
    (True, "v1", "v2", MODEL_DEFAULT),  # another model: its own calibrated default
    (False, "v1", "v1", 0.15),  # given by a person: always the job's
    (False, "v1", "v2", 0.15),
])
def test_flag_threshold(from_model, submitted_with, served, used):
    job = Job(threshold=0.15, threshold_from_model=from_model, model_version=submitted_with)
    model = ModelInfo(path=Path("model.onnx"), version=served, class_to_digit=tuple(range(10)),
                      default_threshold=MODEL_DEFAULT, metadata={})
    assert flag_threshold(job, model) == used
