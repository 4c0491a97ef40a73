"""The model registry over HTTP: ``GET /api/models``, promote, roll back; the pages are
``/models`` and ``/models/{version}`` (web.routes.pages).

A promote or rollback checks the files the workers would load first and is refused (409,
one line) before anything changes (training.registry); the workers switch at their next
batch. Both are POSTs behind the same credentials and CSRF check as every other write.
"""

from __future__ import annotations

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from signdigits.db.registry import find_model, list_models, promoted_model
from signdigits.serving.artifact import ArtifactError
from signdigits.training.registry import (
    default_model_info,
    promote_model,
    rollback_model,
)
from signdigits.web.deps import SessionDep, SettingsDep, StateDep
from signdigits.web.schemas import ModelChange, ModelList, ModelOut

router = APIRouter(prefix="/api/models", tags=["models"])


def model_list(session, settings) -> ModelList:
    """What the API and the Models page show."""
    promoted = promoted_model(session)
    try:
        default: str | None = default_model_info(settings).version
    except ArtifactError:
        default = None
    serving = promoted.version if promoted is not None else default or "?"
    return ModelList(serving=serving, default=default, items=[
        ModelOut(version=row.version, name=row.name, parent=row.parent,
                 created_at=row.created_at, promoted_at=row.promoted_at,
                 serving=row.version == serving, figures=row.figures or {})
        for row in list_models(session)])


@router.get("", response_model=ModelList, summary="Registered models, the newest first")
def list_route(session: SessionDep, settings: SettingsDep) -> ModelList:
    return model_list(session, settings)


@router.get("/{model}", response_model=ModelOut,
            summary="One model by name, version or version prefix")
def one(session: SessionDep, settings: SettingsDep,
        model: str = Path(max_length=255)) -> ModelOut:
    row = find_model(session, model)  # RegistryError: 409 with its line
    serving = model_list(session, settings).serving
    return ModelOut(version=row.version, name=row.name, parent=row.parent,
                    created_at=row.created_at, promoted_at=row.promoted_at,
                    serving=row.version == serving, figures=row.figures or {})


@router.post("/{model}/promote", response_model=ModelChange,
             summary="Serve this model from every worker's next batch (checked first)")
async def promote(state: StateDep, model: str = Path(max_length=255)) -> ModelChange:
    change = await run_in_threadpool(promote_model, state.settings, state.sessions, model)
    return ModelChange(before=change.before, after=change.after, name=change.name)


@router.post("/rollback", response_model=ModelChange,
             summary="Serve the model promoted before the current one (or the default)")
async def rollback(state: StateDep) -> ModelChange:
    change = await run_in_threadpool(rollback_model, state.settings, state.sessions)
    return ModelChange(before=change.before, after=change.after, name=change.name)
