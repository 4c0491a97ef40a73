"""What a process that reads photos will load, checked without loading any of it.

A worker checks this before it takes a batch, and ``run``, ``serve`` and ``worker`` before
they start one: the model artifact (its metadata, read without TensorFlow), the hand
models (their files hashed against the pins), and that the model was trained on the
landmarks of these same hand models. Each failure is one line saying what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from signdigits.config.settings import Settings
from signdigits.serving.artifact import (
    ArtifactError,
    ModelInfo,
    read_model_info,
    resolve_model_path,
)
from signdigits.serving.hands.models import check_models, models_dir


@dataclass(frozen=True)
class ServedModels:
    info: ModelInfo
    served: Path  # the file the configured runtime loads
    hands: Path  # the folder of the hand models


def check_served_models(settings: Settings) -> ServedModels:
    """Raises :class:`ArtifactError` or :class:`~serving.hands.models.HandModelsError`."""
    info = read_model_info(resolve_model_path(settings.model_path))
    served = info.served_file(settings.runtime)
    hands = models_dir(settings.hand_models_dir)
    hashes = check_models(hands)
    trained_on = info.metadata.get("hand_models")
    if trained_on is not None and trained_on != hashes:
        # What HandReader refuses once loaded; said here before anything is loaded.
        raise ArtifactError(f"{served}: trained on landmarks of other hand models than "
                            f"those in {hands}; retrain it")
    return ServedModels(info, served, hands)
