"""Registering, promoting and rolling back models: the checks before the database changes.

``signdigits models`` and the web's Models page both come here. A promote or a rollback
first checks the pair the workers would load (serving.served.check_model_file: both files'
hashes, one version, the runtime's file, the hand models it was trained on), and refuses
in one line before any row changes: a model the workers cannot load never goes live.
Nothing here imports TensorFlow (the web calls it).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from signdigits.config.settings import Settings
from signdigits.db.models import ModelRow
from signdigits.db.registry import (
    RegistryError,
    find_model,
    model_file,
    model_name,
    promote,
    register_model,
    roll_back,
    rollback_target,
)
from signdigits.serving.artifact import (
    ArtifactError,
    ModelInfo,
    read_model_info,
    resolve_model_path,
)
from signdigits.serving.hands.models import HandModelsError
from signdigits.serving.served import check_model_file

__all__ = ["RegistryError", "Change", "promote_model", "rollback_model", "add_to_registry",
           "default_model_info", "registered_path"]


@dataclass(frozen=True)
class Change:
    """What a promote or a rollback did: the version served before, and after."""

    before: str
    after: str
    name: str  # the model now served ("default" for the configured or shipped one)


def registered_path(settings: Settings, row: ModelRow) -> Path:
    return model_file(settings.registry_dir, row.file)


def default_model_info(settings: Settings) -> ModelInfo:
    """The model served when nothing is promoted: SIGNDIGITS_MODEL_PATH or the shipped one."""
    return read_model_info(resolve_model_path(settings.model_path))


def check_servable(settings: Settings, row: ModelRow) -> None:
    """RegistryError (one line) unless the workers could load ``row``'s pair."""
    path = registered_path(settings, row)
    try:
        served = check_model_file(path, settings)
    except (ArtifactError, HandModelsError) as exc:
        raise RegistryError(f"refused, nothing changed: model {row.name} ({row.version}) "
                            f"cannot be served: {exc}") from None
    if served.info.version != row.version:
        raise RegistryError(f"refused, nothing changed: {path} holds version "
                            f"{served.info.version}, the registry says {row.version}")


def _serving_version(settings: Settings, session: Session) -> str:
    from signdigits.db.registry import promoted_model

    promoted = promoted_model(session)
    if promoted is not None:
        return promoted.version
    try:
        return default_model_info(settings).version
    except ArtifactError:
        return "?"


def promote_model(settings: Settings, sessions: sessionmaker[Session], which: str) -> Change:
    """Serve ``which`` (a name, version or version prefix) from the workers' next batch."""
    with sessions.begin() as session:
        row = find_model(session, which)
        check_servable(settings, row)
        before = _serving_version(settings, session)
        promote(session, row)
        return Change(before, row.version, row.name)


def rollback_model(settings: Settings, sessions: sessionmaker[Session]) -> Change:
    """Serve the model promoted before the serving one (or the default) from the next batch."""
    with sessions.begin() as session:
        current, previous = rollback_target(session)
        if previous is not None:
            check_servable(settings, previous)
            after, name = previous.version, previous.name
        else:
            try:
                info = check_model_file(resolve_model_path(settings.model_path), settings)
            except (ArtifactError, HandModelsError) as exc:
                raise RegistryError(f"refused, nothing changed: the default model cannot be "
                                    f"served: {exc}") from None
            after, name = info.info.version, "default"
        roll_back(session, current)
        return Change(current.version, after, name)


def add_to_registry(settings: Settings, sessions: sessionmaker[Session], keras: Path, *,
                    name: str, parent: str | None, figures: dict[str, Any]) -> ModelRow:
    """Copy the pair at ``keras`` (and its ``.onnx``) into the registry folder as
    ``NAME-VERSION.keras|onnx`` and add its row. The files are written first, under a
    temporary name then renamed, so a row never names a half-copied file. The name is
    checked first (db.registry.model_name): nothing is copied for a name refused."""
    name = model_name(name)
    info = read_model_info(keras)
    if info.keras_path is None or info.onnx_path is None:
        raise RegistryError(f"{keras}: a registered model needs both files (.keras and .onnx)")
    folder = settings.registry_dir
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{_safe(name)}-{info.version}"
    with sessions.begin() as session:
        for source, suffix in ((info.keras_path, ".keras"), (info.onnx_path, ".onnx")):
            target = folder / f"{stem}{suffix}"
            if source.resolve() != target.resolve():
                partial = folder / f".{stem}{suffix}.partial"
                shutil.copyfile(source, partial)
                os.replace(partial, target)
        return register_model(session, version=info.version, name=name,
                              file=f"{stem}.keras", parent=parent, figures=figures)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:100] or "model"


def model_of_version(settings: Settings, session: Session, version: str) -> ModelInfo:
    """The artifact of ``version``: a registered one, or the default if it is that one."""
    from sqlalchemy import select

    row = session.scalar(select(ModelRow).where(ModelRow.version == version))
    if row is not None:
        return read_model_info(registered_path(settings, row))
    default = default_model_info(settings)
    if default.version == version:
        return default
    raise RegistryError(f"model {version} is neither registered nor the default model "
                        f"({default.version}); register its files first")


def serving_model_info(settings: Settings, session: Session) -> ModelInfo:
    """The model the workers serve now: the promoted one, else the default."""
    from signdigits.db.registry import promoted_model

    promoted = promoted_model(session)
    if promoted is None:
        return default_model_info(settings)
    return read_model_info(model_file(settings.registry_dir, promoted.file))


def training_data_of(info: ModelInfo) -> Path | None:
    """The data folder a model was trained on, as its metadata records it (if it still
    exists here): what ``adapt`` replays and ``compare`` scores by default."""
    lineage = info.metadata.get("lineage") or {}
    if isinstance(lineage.get("dataset"), str):
        candidate = Path(lineage["dataset"])
        return candidate if candidate.is_dir() else None
    words = str(info.metadata.get("training_command") or "").split()
    for flag, value in zip(words, words[1:], strict=False):
        if flag == "--data" and Path(value).is_dir():
            return Path(value).absolute()
    return None
