"""The model artifact: a Keras ``.keras`` archive and its ONNX graph, one metadata in both.

The pair is ``NAME.keras`` (what TensorFlow loads, and what training writes first) and
``NAME.onnx`` beside it (what ONNX Runtime serves). Both carry the same metadata: the
class-index -> digit table, input shape, preprocessing version, training-data digest,
evaluation figures, training command and default threshold, the SHA-256 of each file's
content (``keras_sha256`` over the archive's entries, ``onnx_sha256`` over the ONNX
graph; see :mod:`serving.onnx_file`), and ``version``, a hash of all of that. In the
archive it is the entry ``signdigits.json``; in the ONNX file the ``metadata_props`` key
of the same name. So the table travels inside each file that is served, and a file whose
content, or whose metadata, is not the one its version was made from is refused, as is a
pair whose halves come from different trainings.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from signdigits.files.paths import real_path
from signdigits.serving.model_input import FEATURE_COUNT, NUM_CLASSES, PREPROCESS_VERSION

METADATA_ENTRY = "signdigits.json"  # the archive's entry and the ONNX metadata_props key
SHIPPED_MODEL = "signdigits-hands.keras"
RUNTIMES = ("onnx", "tensorflow")


class ArtifactError(ValueError):
    """The model file cannot be used; the message says why."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    version: str
    class_to_digit: tuple[int, ...]
    default_threshold: float
    metadata: dict[str, Any]
    keras_path: Path | None = None  # the archive, when there is one
    onnx_path: Path | None = None  # the ONNX graph, when there is one

    def served_file(self, runtime: str) -> Path:
        """The file ``runtime`` loads; ArtifactError if this artifact has none for it, or
        if the runtime is not installed (TensorFlow comes with the ``training`` extra)."""
        _require_runtime(runtime)
        if runtime == "onnx":
            if self.onnx_path is None:
                raise ArtifactError(
                    f"{self.path}: no ONNX graph beside it ({self.path.with_suffix('.onnx')}); "
                    f"make it with `signdigits export-onnx {self.path}`, or set "
                    "SIGNDIGITS_RUNTIME=tensorflow")
            return self.onnx_path
        if self.keras_path is None:
            raise ArtifactError(f"{self.path}: SIGNDIGITS_RUNTIME=tensorflow needs the Keras "
                                f"archive beside it ({self.path.with_suffix('.keras')})")
        return self.keras_path


def _require_runtime(runtime: str) -> None:
    import importlib.util

    package = {"onnx": "onnxruntime", "tensorflow": "tensorflow"}.get(runtime)
    if package is None:
        raise ArtifactError(f"unknown runtime {runtime!r} (expected one of {', '.join(RUNTIMES)})")
    try:
        found = importlib.util.find_spec(package) is not None
    except (ValueError, ImportError):
        found = False
    if not found:
        extra = " the training extra: pip install 'signdigits[training]'" \
            if runtime == "tensorflow" else " onnxruntime: pip install signdigits"
        raise ArtifactError(f"SIGNDIGITS_RUNTIME={runtime} needs{extra}")


def shipped_model_path() -> Path:
    return Path(str(resources.files("signdigits.serving") / "artifacts" / SHIPPED_MODEL))


def resolve_model_path(path: Path | None) -> Path:
    """The model file to use: ``path`` (from ``SIGNDIGITS_MODEL_PATH``), else the shipped one.

    The caller passes its settings' value: reading global settings here would make every
    test and embedded caller share one process-wide model choice.
    """
    return real_path(path or shipped_model_path())


def keras_digest(archive: zipfile.ZipFile) -> str:
    """SHA-256 of the archive's entries (names and bytes), our metadata entry excepted."""
    h = hashlib.sha256()
    for name in sorted(archive.namelist()):
        if name != METADATA_ENTRY:
            h.update(name.encode())
            h.update(archive.read(name))
    return h.hexdigest()


def artifact_version(metadata: dict[str, Any]) -> str:
    """The content hash: of the metadata, which holds both files' digests."""
    unversioned = {k: v for k, v in metadata.items() if k != "version"}
    return hashlib.sha256(json.dumps(unversioned, sort_keys=True).encode()).hexdigest()[:16]


def _legacy_version(archive: zipfile.ZipFile, metadata: dict[str, Any]) -> str:
    """Versions of archives written before the ONNX graph existed (no ``onnx_sha256``)."""
    h = hashlib.sha256()
    for name in sorted(archive.namelist()):
        if name != METADATA_ENTRY:
            h.update(name.encode())
            h.update(archive.read(name))
    unversioned = {k: v for k, v in metadata.items() if k != "version"}
    h.update(json.dumps(unversioned, sort_keys=True).encode())
    return h.hexdigest()[:16]


def save_artifact(model, path: Path, metadata: dict[str, Any]) -> ModelInfo:
    """Save ``model`` with ``metadata`` (which must hold ``class_to_digit``).

    This writes the archive alone: ``training.export_onnx`` then adds the ONNX graph and
    stamps both files with the version that covers them. An ONNX file left beside it
    from an earlier training is removed (it describes another model).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".onnx").unlink(missing_ok=True)
    tmp = path.with_suffix(".tmp.keras")
    model.save(tmp)
    metadata = {
        **metadata,
        "input_shape": [FEATURE_COUNT],
        "preprocess_version": PREPROCESS_VERSION,
    }
    with zipfile.ZipFile(tmp, "a") as archive:
        metadata["version"] = _legacy_version(archive, metadata)
        archive.writestr(METADATA_ENTRY, json.dumps(metadata, indent=2, sort_keys=True))
    tmp.replace(path)
    return read_model_info(path)


def write_keras_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """Replace the archive's metadata entry (the archive is rewritten, then renamed)."""
    tmp = path.with_suffix(".tmp.keras")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename != METADATA_ENTRY:
                dst.writestr(item, src.read(item.filename))
        dst.writestr(METADATA_ENTRY, json.dumps(metadata, indent=2, sort_keys=True))
    tmp.replace(path)


def read_keras_metadata(path: Path) -> dict[str, Any]:
    """The archive's metadata, checked against the archive alone."""
    try:
        with zipfile.ZipFile(path) as archive:
            if METADATA_ENTRY not in archive.namelist():
                raise ArtifactError(
                    f"{path}: no {METADATA_ENTRY} inside; a model without its class-index -> "
                    "digit table is refused (train it with `signdigits train`)"
                )
            metadata = _json_object(archive.read(METADATA_ENTRY), path)
            if "onnx_sha256" not in metadata:
                expected = _legacy_version(archive, metadata)
            elif metadata.get("keras_sha256") != keras_digest(archive):
                raise ArtifactError(f"{path}: the archive's weights or graph are not the ones "
                                    "its metadata describes (keras_sha256 differs); refused")
            else:
                expected = artifact_version(metadata)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: model file not found") from None
    except (zipfile.BadZipFile, IsADirectoryError):
        raise ArtifactError(f"{path}: not a .keras model archive") from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if metadata.get("version") != expected:
        raise ArtifactError(f"{path}: its metadata was altered (version "
                            f"{metadata.get('version')} does not match its content); refused")
    return metadata


def _onnx_metadata(path: Path) -> dict[str, Any]:
    from signdigits.serving.onnx_file import OnnxFileError, split_model

    try:
        props, digest = split_model(path.read_bytes())
        metadata = _json_object(props[METADATA_ENTRY], path)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: model file not found") from None
    except (OnnxFileError, IsADirectoryError):
        raise ArtifactError(f"{path}: not an ONNX model") from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except KeyError:
        raise ArtifactError(
            f"{path}: no {METADATA_ENTRY} in its metadata_props; an ONNX graph without its "
            "class-index -> digit table is refused (make it with `signdigits export-onnx`)"
        ) from None
    if metadata.get("onnx_sha256") != digest:
        raise ArtifactError(f"{path}: its ONNX graph is not the one its metadata describes "
                            "(onnx_sha256 differs: graph and metadata disagree); refused")
    if metadata.get("version") != artifact_version(metadata):
        raise ArtifactError(f"{path}: its metadata was altered (version "
                            f"{metadata.get('version')} does not match its content); refused")
    return metadata


def _json_object(raw: bytes | str, path: Path) -> dict[str, Any]:
    try:
        metadata = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser
        metadata = None
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{path}: its {METADATA_ENTRY} metadata is not a JSON object")
    return metadata


def _threshold(metadata: dict[str, Any], path: Path) -> float:
    value = metadata.get("default_threshold", 0.5)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        # A NaN would flag nothing below threshold, a string fail in every worker's batch.
        raise ArtifactError(f"{path}: default_threshold must be a number from 0 to 1, "
                            f"not {value!r}")
    return float(value)


def _file_stamp(path: Path) -> tuple[int, ...] | None:
    """What tells one file's content from the next one's at ``path``: None if absent."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(found.st_mode):  # a FIFO would block every read forever
        raise ArtifactError(f"{path}: not a regular file")
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns


def read_model_info(path: Path) -> ModelInfo:
    """Read and check the artifact named by ``path`` (either file), without TensorFlow.

    Each file present is checked against its own metadata; when both are, their
    versions must be equal. Read again whenever either file has changed: a long-running
    ``serve`` recorded a replaced model's version and threshold on its new jobs.
    """
    path = Path(path)
    sibling = path.with_suffix(".keras" if path.suffix == ".onnx" else ".onnx")
    return _read_model_info(path, _file_stamp(path), _file_stamp(sibling))


@lru_cache(maxsize=8)
def _read_model_info(path: Path, *_stamps: tuple[int, ...] | None) -> ModelInfo:
    onnx_named = path.suffix == ".onnx"
    metadata = _onnx_metadata(path) if onnx_named else read_keras_metadata(path)
    sibling = path.with_suffix(".keras" if onnx_named else ".onnx")
    if sibling.exists():
        other = read_keras_metadata(sibling) if onnx_named else _onnx_metadata(sibling)
        if other.get("version") != metadata.get("version"):
            raise ArtifactError(
                f"{path} (version {metadata.get('version')}) and {sibling} (version "
                f"{other.get('version')}) come from different trainings; refused (export "
                "the ONNX graph again: `signdigits export-onnx MODEL.keras`)")
    table = metadata.get("class_to_digit")
    if (not isinstance(table, list) or not all(type(d) is int for d in table)
            or sorted(table) != list(range(NUM_CLASSES))):
        raise ArtifactError(f"{path}: class_to_digit must map the 10 classes to digits 0-9")
    if metadata.get("preprocess_version") != PREPROCESS_VERSION:
        raise ArtifactError(
            f"{path}: trained with preprocessing v{metadata.get('preprocess_version')}, this "
            f"code preprocesses with v{PREPROCESS_VERSION}; retrain the model"
        )
    present = {path.suffix: path, sibling.suffix: sibling if sibling.exists() else None}
    return ModelInfo(
        path=path,
        version=str(metadata["version"]),
        class_to_digit=tuple(table),
        default_threshold=_threshold(metadata, path),
        metadata=metadata,
        keras_path=present.get(".keras"),
        onnx_path=present.get(".onnx"),
    )
