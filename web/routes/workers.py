"""``GET /api/workers``: the workers online now and the model each serves, from their
heartbeats on the broker (broker.liveness). The job page warns from it when a job waits
with no worker online, and the Models page when no worker serves the promoted model."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException

from signdigits.broker.liveness import serving_versions, workers_online
from signdigits.web.deps import StateDep
from signdigits.web.schemas import WorkersOut

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/workers", tags=["workers"])


@router.get("", response_model=WorkersOut, summary="The workers online and their models",
            responses={503: {"description": "the broker did not answer"}})
def workers(state: StateDep) -> WorkersOut:
    try:
        found = workers_online(state.celery)
    except Exception as exc:  # noqa: BLE001 - any broker failure: one line, no 500
        log.warning("workers: broker unavailable: %s", exc)
        raise HTTPException(503, "the broker did not answer: the workers cannot be seen"
                            ) from None
    return WorkersOut(online=len(found), models=serving_versions(found))
