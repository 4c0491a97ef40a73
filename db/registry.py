"""The model registry: which model artifacts exist, and which one the workers serve.

The workers serve the row promoted last (highest ``promoted_at``); with none promoted,
SIGNDIGITS_MODEL_PATH or the shipped model. A rollback clears the serving row's
``promoted_at``, so the one promoted before it serves again (or the default, when there
was none): the history is the order of promotion, kept in the rows themselves.

Only rows live here; the files are in SIGNDIGITS_MODELS_DIR, and whether a version can be
served is checked by the caller (serving.served.check_model_file) before anything changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from signdigits.db.models import Image, ImageStatus, Job, ModelRow, utcnow
from signdigits.files.names import name_problem

# What `models promote` and the pages call the model served when nothing is promoted
# (SIGNDIGITS_MODEL_PATH or the shipped one): never a registered model's name.
DEFAULT = "default"
MAX_NAME = 100  # characters: a name is shown in tables, and is its files' stem
# The registry writes ".NAME-VERSION.keras.partial" (a 16-character version), then renames
# it: the name's UTF-8 bytes must leave room for the rest in a file name's 255 bytes.
MAX_NAME_BYTES = 255 - len(".-0123456789abcdef.keras.partial")


class RegistryError(ValueError):
    """A registry request that cannot be done; the message says why, in one line."""


class ModelNotFound(RegistryError):
    """No registered model by that name or version."""


class ModelNameError(RegistryError):
    """A name no model can have: empty, too long, or holding control characters."""


def model_name(text: str) -> str:
    """``text`` as a new model's name, the one rule of ``adapt --out`` and of registering:
    trimmed, 1 to :data:`MAX_NAME` characters and :data:`MAX_NAME_BYTES` bytes (its files
    are named after it), one line, no other control and no bidirectional control
    character (as job names: db.jobs.job_name)."""
    name = str(text).strip()
    if not name:
        raise ModelNameError("a model's name cannot be empty")
    if len(name) > MAX_NAME:
        raise ModelNameError(f"a model's name is at most {MAX_NAME} characters (got {len(name)})")
    problem = name_problem(name)
    if problem:
        raise ModelNameError(f"a model's name {problem}")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ModelNameError(f"a model's name is at most {MAX_NAME_BYTES} bytes in UTF-8 "
                             f"(its files are named after it; got {len(name.encode())})")
    if name.casefold() == DEFAULT.casefold():
        raise ModelNameError(f"{DEFAULT!r} names the configured or shipped model; choose "
                             "another name")
    return name


@dataclass(frozen=True)
class Promoted:
    """What the workers serve now, read once per batch: the version and its file."""

    version: str
    file: str  # relative to SIGNDIGITS_MODELS_DIR


def promoted_model(session: Session) -> Promoted | None:
    """The model promoted last, or None (serve the configured or shipped one).

    One indexed query on a table of a few rows: every batch asks it before it classifies.
    """
    row = session.execute(
        select(ModelRow.version, ModelRow.file).where(ModelRow.promoted_at.is_not(None))
        .order_by(ModelRow.promoted_at.desc()).limit(1)).first()
    return Promoted(row[0], row[1]) if row is not None else None


def list_models(session: Session) -> list[ModelRow]:
    """Every registered model, the newest first."""
    return list(session.scalars(select(ModelRow).order_by(ModelRow.created_at.desc(),
                                                          ModelRow.version)))


def find_model(session: Session, which: str) -> ModelRow:
    """The model named ``which``: its name, its version, or a unique prefix of a version."""
    which = which.strip()
    if not which:
        raise ModelNotFound("no model named (give a name or a version)")
    by_name = session.scalar(select(ModelRow).where(ModelRow.name == which))
    if by_name is not None:
        return by_name
    found = list(session.scalars(select(ModelRow).where(ModelRow.version.startswith(
        which, autoescape=True)).limit(2)))
    if len(found) == 1:
        return found[0]
    if found:
        raise RegistryError(f"{which!r} names more than one model version; give more of it")
    raise ModelNotFound(f"no registered model {which!r}")


def register_model(session: Session, *, version: str, name: str, file: str,
                   parent: str | None, figures: dict[str, Any]) -> ModelRow:
    """Add a model to the registry (not promoted). The caller commits."""
    name = model_name(name)
    if session.get(ModelRow, version) is not None:
        raise RegistryError(f"model version {version} is already registered")
    if session.scalar(select(ModelRow).where(ModelRow.name == name)) is not None:
        raise RegistryError(f"a model named {name!r} is already registered; choose another")
    row = ModelRow(version=version, name=name, file=file, parent=parent, figures=figures,
                   created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def promote(session: Session, row: ModelRow) -> None:
    """``row`` serves from the next batch on. The caller checked its files and commits."""
    row.promoted_at = utcnow()
    session.flush()


def rollback_target(session: Session) -> tuple[ModelRow, ModelRow | None]:
    """(the serving row, the row a rollback would serve: None for the default model).

    Raises RegistryError when nothing is promoted (the default already serves)."""
    promoted = list(session.scalars(select(ModelRow).where(ModelRow.promoted_at.is_not(None))
                                    .order_by(ModelRow.promoted_at.desc()).limit(2)))
    if not promoted:
        raise RegistryError("nothing is promoted: the default model already serves")
    return promoted[0], promoted[1] if len(promoted) > 1 else None


def unpromote_all(session: Session) -> None:
    """Nothing promoted: the default model serves from the next batch. Caller commits."""
    session.execute(update(ModelRow).where(ModelRow.promoted_at.is_not(None))
                    .values(promoted_at=None))


def roll_back(session: Session, current: ModelRow) -> None:
    """Stop serving ``current``: the one promoted before it serves next. Caller commits."""
    current.promoted_at = None
    session.flush()


def set_figures(session: Session, row: ModelRow, **more: Any) -> None:
    """Merge ``more`` into the row's figures (a comparison, say). The caller commits."""
    row.figures = {**(row.figures or {}), **more}
    session.flush()


def versions_that_read(session: Session, *, job_ids: list[str]) -> list[tuple[str, int]]:
    """(model version, images it read) over these jobs' classified rows, most first."""
    count = func.count().label("n")
    rows = session.execute(
        select(Image.model_version, count).where(
            Image.job_id.in_(job_ids), Image.status == ImageStatus.DONE,
            Image.model_version.is_not(None))
        .group_by(Image.model_version).order_by(count.desc())).all()
    return [(str(version), int(n)) for version, n in rows]


def versions_by_job(session: Session, *, job_ids: list[str]) -> dict[str, list[tuple[str, int]]]:
    """(model version, images it read) of each of these jobs' classified rows, most first:
    a job with more than one had a model promoted while it ran. One query for them all
    (it reads the jobs' rows: what `status` and one job's page and answer pay, not lists)."""
    count = func.count().label("n")
    found: dict[str, list[tuple[str, int]]] = {job_id: [] for job_id in job_ids}
    if not job_ids:
        return found
    rows = session.execute(
        select(Image.job_id, Image.model_version, count).where(
            Image.job_id.in_(job_ids), Image.status == ImageStatus.DONE,
            Image.model_version.is_not(None))
        .group_by(Image.job_id, Image.model_version)
        .order_by(Image.job_id, count.desc(), Image.model_version)).all()
    for job_id, version, n in rows:
        found[str(job_id)].append((str(version), int(n)))
    return found


@dataclass(frozen=True)
class Recorded:
    """What the registry holds of a model version: the default threshold its figures
    record (None: they record none) and its ``.keras`` file, relative to the folder."""

    default_threshold: float | None
    file: str


def recorded_models(session: Session, versions: list[str]) -> dict[str, Recorded]:
    """The registry's rows of these versions (an unregistered one is left out)."""
    if not versions:
        return {}
    found = {}
    for version, file, figures in session.execute(
            select(ModelRow.version, ModelRow.file, ModelRow.figures)
            .where(ModelRow.version.in_(versions))):
        value = (figures or {}).get("default_threshold")
        threshold = (float(value) if isinstance(value, (int, float))
                     and not isinstance(value, bool) and 0 <= value <= 1  # NaN is refused
                     else None)
        found[str(version)] = Recorded(threshold, str(file))
    return found


def classified_images(session: Session, *, job_ids: list[str]) -> list[tuple[Image, Job]]:
    """Every classified image of these jobs with its job, in job and path order."""
    return [(row[0], row[1]) for row in session.execute(
        select(Image, Job).join(Job, Job.id == Image.job_id)
        .where(Image.job_id.in_(job_ids), Image.status == ImageStatus.DONE)
        .order_by(Image.job_id, Image.path))]


def model_file(models_dir: Path, relative: str) -> Path:
    """A registered model's ``.keras`` path in ``models_dir``."""
    return models_dir / relative
