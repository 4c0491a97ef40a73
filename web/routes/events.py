"""Server-sent events: a job's counts as they change (``GET /api/jobs/{id}/events``, the
job page), and every job's changes on one stream (``GET /api/events``, the jobs page).

The browser keeps one connection open instead of asking every second; the server reads
the counts once a second and sends what changed. A job's stream ends with a ``done``
event with the finished state. Asked with ``stored=true`` (the job page), a ``stored``
event before one names the batches stored since the last, so the page fetches only those
rows to fill its grid and charts, and ``stats`` and ``evaluation`` events first carry the
charts' and the labels' figures as of the batches it knows of (:class:`_Arrivals`). The
``progress`` and ``done`` events hold the job as ``GET /api/jobs/{id}`` shows it, nothing
else. Each event's counts are read between two equal looks at the job's batches, so they
hold exactly the batches the page was told of: the page draws the header, the charts and
the labels' figures together, from one moment, never one panel a batch ahead of another.

The jobs page has one stream for all its jobs: one per job had used up Chromium's 6
connections to a host with 6 unfinished jobs (stalled ones never end), and every other
request of the page then waited for ever.

A database that fails mid-stream ends the stream cleanly: an ``error`` event with one
line, a ``retry:`` telling the browser when to come back, and the body's last chunk
(the exception had reached the server, which logged a traceback and cut the body
mid-chunk).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from signdigits.config.settings import Settings
from signdigits.db.batches import finished_batches
from signdigits.db.jobs import jobs_after, jobs_by_id, newest_job_id, resolve_job
from signdigits.db.labels import evaluate
from signdigits.db.models import JobState
from signdigits.db.progress import summarize_jobs
from signdigits.web.deps import FoundSummary, StateDep, described, summary_of
from signdigits.web.page_schemas import EvaluationOut
from signdigits.web.routes.results import job_stats
from signdigits.web.schemas import JobOut
from signdigits.web.state import WebState

log = logging.getLogger(__name__)
router = APIRouter(tags=["jobs"])

INTERVAL = 1.0
RETRY_MS = 5000  # how long a browser waits before it opens a stream the server ended
MAX_WATCHED = 200
JOB_ID = r"^[0-9a-f]{32}$"
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def _ended_by(exc: DBAPIError | PoolTimeout) -> str:
    """The last message of a stream whose database failed: logged in one line, told in one."""
    reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
    log.warning("event stream ended: database unavailable (%s)", reason)
    return f"retry: {RETRY_MS}\n" + _event("error", {
        "detail": "database unavailable; the stream ends and the page reconnects"})


async def _ticks(request: Request, read: Callable[[], Any], *,
                 wait_first: bool) -> AsyncIterator[Any]:
    """``read()`` (in a thread) once every INTERVAL while the client is there, the first
    at once unless ``wait_first``. A database error ends the iteration with the error
    message (a ``str``) as its last item."""
    while True:
        if wait_first:
            await asyncio.sleep(INTERVAL)
            if await request.is_disconnected():
                return
        wait_first = True
        try:
            yield await run_in_threadpool(read)
        except (DBAPIError, PoolTimeout) as exc:  # down, or every connection taken
            yield _ended_by(exc)
            return


class _Arrivals:
    """Which of a job's batches were stored since the last look.

    Each look reads the batches whose latest row was stored in the last ``LAG`` before
    the newest one seen (one row per batch, as the job's summary reads them): a batch a
    worker finished earlier but committed later is still found, as long as its commit
    came within ``LAG``. A batch is named again only if its finished count changed.
    """

    LAG = timedelta(seconds=120)

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.seen: dict[int, tuple[int, datetime | None]] = {}
        self.since: datetime | None = None

    def opening(self, session, shown: Callable[[], dict]) -> tuple[dict, dict, dict]:
        """The charts' figures, the labels' figures and the job as shown (``shown()``),
        with every batch they count remembered as seen: all three hold the same batches,
        so the page never adds a batch the figures already hold."""
        def figures() -> tuple[dict, dict, dict]:
            job = resolve_job(session, ref=self.job_id)
            return (job_stats(session, job).model_dump(mode="json"),
                    EvaluationOut.of(evaluate(session, job=job)).model_dump(mode="json"),
                    shown())

        rows, read = self._steady(session, figures, since=None)
        self._remember(rows)
        return read

    def stored(self, session, shown: Callable[[], dict]) -> tuple[list[int], dict]:
        """The batches stored (or changed) since the last look, and the job as shown
        (``shown()``): its counts hold exactly the batches named (read one after the
        other, a batch stored between the reads was in the header a second before its
        rows were in the charts)."""
        rows, now = self._steady(session, shown, since=self.since)
        changed = [batch for batch, finished, _ in rows
                   if self.seen.get(batch, (0, None))[0] != finished]
        self._remember(rows)
        return changed, now

    def _steady(self, session, read: Callable[[], Any], *, since: datetime | None):
        """(the job's batches, ``read()``), read between two looks at the batches until the
        looks are equal (no batch was stored meanwhile; at most 5 tries), so what was read
        holds exactly those batches."""
        for _ in range(5):
            before = finished_batches(session, job_id=self.job_id, since=since)
            value = read()
            after = finished_batches(session, job_id=self.job_id, since=since)
            if before == after:
                break
            session.rollback()  # a fresh snapshot where the database keeps one
        return after, value

    def _remember(self, rows: list[tuple[int, int, datetime | None]]) -> None:
        for batch, finished, at in rows:
            self.seen[batch] = (finished, at)
        newest = max((at for _, _, at in rows if at is not None), default=None)
        if newest is not None and (self.since is None or newest - self.LAG > self.since):
            self.since = newest - self.LAG
            self.seen = {b: v for b, v in self.seen.items() if v[1] is None or v[1] >= self.since}


@router.get("/api/jobs/{job_id}/events",
            summary="Server-sent events: a job's counts as they change, then done")
async def events(request: Request, summary: FoundSummary, state: StateDep,
                 stored: Annotated[bool, Query(description=(
                     "also `stats` and `evaluation` events first (as GET "
                     "/api/jobs/{id}/stats and /evaluation) and, before "
                     "a progress or done event, a `stored` event naming the batches "
                     "stored since the one before"))] = False) -> StreamingResponse:
    """``progress`` events and a last ``done`` (the job as ``GET /api/jobs/{id}``). With
    ``stored``: ``stats`` and ``evaluation`` first, and before a ``progress`` or ``done``,
    ``stored`` (``{"batches": [...]}``) when batches were stored since the one before
    (their rows: ``GET /api/jobs/{id}/images?batch=N``)."""
    # The job found now (an unknown one is a 404, not an empty stream), followed by its
    # full id: asked again by `latest` or a prefix, the stream went on with a newer job
    # (and its `done`), or broke mid-body once a prefix was shared by a new job.
    job_id = summary.job.id
    arrivals = _Arrivals(job_id) if stored else None

    def first() -> tuple[str, dict]:
        with state.sessions() as session:
            def shown() -> dict:
                return _shown(session, job_id, state.settings)
            if arrivals is None:
                return "", shown()
            stats, found, now = arrivals.opening(session, shown)
            return _event("stats", stats) + _event("evaluation", found), now

    def current() -> tuple[list[int], dict]:
        with state.sessions() as session:
            def shown() -> dict:
                return _shown(session, job_id, state.settings)
            return arrivals.stored(session, shown) if arrivals else ([], shown())

    async def stream() -> AsyncIterator[str]:
        try:
            figures, shown = await run_in_threadpool(first)
        except (DBAPIError, PoolTimeout) as exc:
            yield _ended_by(exc)
            return
        finished = JobState(shown["state"]).finished
        yield (f"retry: {RETRY_MS}\n" + figures
               + _event("done" if finished else "progress", shown))
        if finished:
            return
        async for read in _ticks(request, current, wait_first=True):
            if isinstance(read, str):  # the database failed
                yield read
                return
            batches, snapshot = read
            if snapshot == shown and not batches:
                yield ": still running\n\n"  # a comment: keeps proxies from closing it
                continue
            finished = JobState(snapshot["state"]).finished
            yield ((_event("stored", {"batches": batches}) if batches else "")
                   + _event("done" if finished else "progress", snapshot))
            if finished:
                return
            shown = snapshot

    return StreamingResponse(stream(), media_type="text/event-stream", headers=HEADERS)


def _shown(session: Session, job_id: str, settings: Settings) -> dict:
    """The job as its ``progress`` events show it, or at its end (``done``) as ``GET
    /api/jobs/{id}`` does, with the models that read it: counted once, not every tick."""
    summary = summary_of(session, resolve_job(session, ref=job_id), settings)
    shown = described(session, summary, settings) if summary.state.finished \
        else JobOut.of(summary)
    return shown.model_dump(mode="json")


class _Watch:
    """What one jobs-page stream follows: the unfinished jobs it was given, and every job
    created after the newest one the page knew (``after``), found as they appear."""

    def __init__(self, state: WebState, ids: list[str], after: str | None) -> None:
        self.state, self.ids, self.after = state, list(dict.fromkeys(ids)), after
        self.started = False
        self.shown: dict[str, dict] = {}

    def read(self) -> list[dict]:
        """The jobs whose counts changed since the last read (all of them, the first
        time); a finished job is sent once more, then no longer followed."""
        with self.state.sessions() as session:
            if not self.started:
                if self.after is not None and not jobs_by_id(session, ids=[self.after]):
                    self.after = newest_job_id(session)  # a job since deleted
                self.started = True
            new = jobs_after(session, job_id=self.after)
            if new:
                self.after = new[-1].id
            known = set(self.ids)
            self.ids += [job.id for job in new if job.id not in known]
            jobs = {job.id: job for job in jobs_by_id(session, ids=self.ids)}
            summaries = summarize_jobs(session, jobs=[jobs[i] for i in self.ids if i in jobs],
                                       stall_seconds=self.state.settings.stall_seconds)
        changed = []
        for summary in summaries:
            snapshot = JobOut.of(summary).model_dump(mode="json")
            if self.shown.get(summary.job.id) != snapshot:
                changed.append(snapshot)
                self.shown[summary.job.id] = snapshot
        ended = {s["id"] for s in changed if JobState(s["state"]).finished}
        self.ids = [i for i in self.ids if i in jobs and i not in ended]
        self.shown = {i: self.shown[i] for i in self.ids}
        return changed


@router.get("/api/events", summary="Server-sent events: every followed job's changes, on "
                                    "one stream")
async def all_events(
    request: Request, state: StateDep,
    job: Annotated[list[Annotated[str, StringConstraints(pattern=JOB_ID)]] | None, Query(
        max_length=MAX_WATCHED, description="a job to follow until it ends (full ids)")] = None,
    after: Annotated[str | None, Query(pattern=JOB_ID, description=(
        "the newest job the client knows: jobs created after it are sent as they appear "
        "(without it, the newest 50 and every later one)"))] = None,
) -> StreamingResponse:
    """One ``job`` event per change of a followed job (its state and counts, as
    ``GET /api/jobs/{id}``), the last one when it ends; new jobs join as they appear.
    The stream stays open; comments keep it alive while nothing changes."""
    watch = _Watch(state, job or [], after)

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        async for changed in _ticks(request, watch.read, wait_first=False):
            if isinstance(changed, str):  # the database failed
                yield changed
                return
            yield "".join(_event("job", s) for s in changed) or ": nothing changed\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers=HEADERS)
