"""The model artifact: a Keras ``.keras`` archive with our metadata inside it.

The archive gains one entry, ``signdigits.json``: the class-index -> digit table, input
shape, preprocessing version, training-data digest, evaluation figures, training command
and default threshold, plus ``version``, a content hash of the weights, config and that
metadata. Keeping the table inside the weights' own file means the table can never be
separated from, or mismatched with, the model it describes.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from serving.model_input import IMAGE_SIZE, NUM_CLASSES, PREPROCESS_VERSION

METADATA_ENTRY = "signdigits.json"
SHIPPED_MODEL = "signdigits-cnn.keras"


class ArtifactError(ValueError):
    """The model file cannot be used; the message says why."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    version: str
    class_to_digit: tuple[int, ...]
    default_threshold: float
    metadata: dict[str, Any]


def shipped_model_path() -> Path:
    return Path(str(resources.files("serving") / "artifacts" / SHIPPED_MODEL))


def resolve_model_path(path: Path | None) -> Path:
    """The model file to use: ``path`` (from ``SIGNDIGITS_MODEL_PATH``), else the shipped one.

    The caller passes its settings' value: reading global settings here would make every
    test and embedded caller share one process-wide model choice.
    """
    return Path(path or shipped_model_path()).expanduser().resolve()


def _content_hash(archive: zipfile.ZipFile, metadata: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for name in sorted(archive.namelist()):
        if name != METADATA_ENTRY:
            h.update(name.encode())
            h.update(archive.read(name))
    unversioned = {k: v for k, v in metadata.items() if k != "version"}
    h.update(json.dumps(unversioned, sort_keys=True).encode())
    return h.hexdigest()[:16]


def save_artifact(model, path: Path, metadata: dict[str, Any]) -> ModelInfo:
    """Save ``model`` with ``metadata`` (which must hold ``class_to_digit``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.keras")
    model.save(tmp)
    metadata = {
        **metadata,
        "input_shape": [IMAGE_SIZE, IMAGE_SIZE, 1],
        "preprocess_version": PREPROCESS_VERSION,
    }
    with zipfile.ZipFile(tmp, "a") as archive:
        metadata["version"] = _content_hash(archive, metadata)
        archive.writestr(METADATA_ENTRY, json.dumps(metadata, indent=2, sort_keys=True))
    tmp.replace(path)
    read_model_info.cache_clear()
    return read_model_info(path)


@lru_cache(maxsize=8)
def read_model_info(path: Path) -> ModelInfo:
    """Read and validate the metadata without loading TensorFlow."""
    try:
        with zipfile.ZipFile(path) as archive:
            if METADATA_ENTRY not in archive.namelist():
                raise ArtifactError(
                    f"{path}: no {METADATA_ENTRY} inside; a model without its class-index -> "
                    "digit table is refused (train it with `signdigits train`)"
                )
            metadata = json.loads(archive.read(METADATA_ENTRY))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: model file not found") from None
    except zipfile.BadZipFile:
        raise ArtifactError(f"{path}: not a .keras model archive") from None
    table = metadata.get("class_to_digit")
    if not isinstance(table, list) or sorted(table) != list(range(NUM_CLASSES)):
        raise ArtifactError(f"{path}: class_to_digit must map the 10 classes to digits 0-9")
    if metadata.get("preprocess_version") != PREPROCESS_VERSION:
        raise ArtifactError(
            f"{path}: trained with preprocessing v{metadata.get('preprocess_version')}, this "
            f"code preprocesses with v{PREPROCESS_VERSION}; retrain the model"
        )
    return ModelInfo(
        path=path,
        version=str(metadata["version"]),
        class_to_digit=tuple(table),
        default_threshold=float(metadata.get("default_threshold", 0.5)),
        metadata=metadata,
    )
