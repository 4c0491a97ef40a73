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
from signdigits.serving.hands.features import FEATURES_VERSION
from signdigits.serving.hands.models import check_models, models_dir


@dataclass(frozen=True)
class ServedModels:
    info: ModelInfo
    served: Path  # the file the configured runtime loads
    hands: Path  # the folder of the hand models


def check_served_models(settings: Settings) -> ServedModels:
    """Raises :class:`ArtifactError` or :class:`~serving.hands.models.HandModelsError`."""
    return check_model_file(resolve_model_path(settings.model_path), settings)


def check_model_file(path: Path, settings: Settings) -> ServedModels:
    """What a worker with ``settings`` checks before serving the model at ``path`` (a
    registered one, before a promote): both files' hashes and versions, the file its
    runtime loads, the hand models it was trained on. Raises as check_served_models."""
    info = read_model_info(path)
    served = info.served_file(settings.runtime)
    hands = models_dir(settings.hand_models_dir)
    check_trained_on(info, check_models(hands), hands)
    return ServedModels(info, served, hands)


def check_trained_on(info: ModelInfo, hand_model_hashes: dict[str, str], hands: Path) -> None:
    """The classifier must have been trained on features of these hand models' landmarks,
    computed as this code computes them: other landmarks mean other numbers, read wrong
    with full confidence."""
    trained_on = info.metadata.get("hand_models")
    version = info.metadata.get("features_version")
    if trained_on is None or version is None:
        raise ArtifactError(f"{info.path}: it records no hand models or features version; "
                            "retrain it with `signdigits train`")
    if version != FEATURES_VERSION:
        raise ArtifactError(f"{info.path}: trained on hand features v{version}, this code "
                            f"computes v{FEATURES_VERSION}; retrain it")
    if trained_on != hand_model_hashes:
        raise ArtifactError(f"{info.path}: trained on landmarks of other hand models than "
                            f"those in {hands}; retrain it")
