"""``GET /api/jobs/{id}/events``: a job's counts as server-sent events until it ends.

The browser keeps one connection open instead of asking every second; the server reads
the job's summary once a second and sends it only when it changed, then a final ``done``
event with the finished state, and closes.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from signdigits.db.jobs import resolve_job
from signdigits.db.models import JobState
from signdigits.web.deps import FoundSummary, StateDep, summary_of
from signdigits.web.schemas import JobOut

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

INTERVAL = 1.0


@router.get("/{job_id}/events", summary="Server-sent events: counts as they change, then done")
async def events(request: Request, summary: FoundSummary, state: StateDep) -> StreamingResponse:
    # The job found now (an unknown one is a 404, not an empty stream), followed by its
    # full id: asked again by `latest` or a prefix, the stream went on with a newer job
    # (and its `done`), or broke mid-body once a prefix was shared by a new job.
    first = JobOut.of(summary).model_dump(mode="json")
    job_id = summary.job.id

    def current() -> dict:
        with state.sessions() as session:
            job = resolve_job(session, ref=job_id)
            return JobOut.of(summary_of(session, job, state.settings)).model_dump(mode="json")

    async def stream():
        shown = None
        snapshot = first
        while True:
            if snapshot != shown:
                finished = JobState(snapshot["state"]).finished
                name = "done" if finished else "progress"
                yield f"event: {name}\ndata: {json.dumps(snapshot)}\n\n"
                if finished:
                    return
                shown = snapshot
            else:
                yield ": still running\n\n"  # a comment: keeps proxies from closing it
            await asyncio.sleep(INTERVAL)
            if await request.is_disconnected():
                return
            snapshot = await run_in_threadpool(current)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
