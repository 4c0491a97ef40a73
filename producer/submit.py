"""Submit a folder: record the job and its manifest, then enqueue its batches.

The job records its own submission: which producer walks it (``host:pid``), when that
producer last wrote, and once the walk is over and every batch sent, ``submitted_at``.
``status`` tells a submission at work from one whose producer died, and ``resume``
finishes the walk of an interrupted one where it stopped.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from celery import Celery
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.orm import Session, sessionmaker

from signdigits.broker.app import reply_deadlines
from signdigits.config.settings import Settings, shown_value
from signdigits.db.batches import next_batch_number, pending_batches, unsent_batches
from signdigits.db.jobs import (
    create_job,
    default_job_name,
    job_name,
    producer_alive,
)
from signdigits.db.manifest import add_unreachable
from signdigits.db.models import Job, utcnow
from signdigits.db.registry import model_file, promoted_model
from signdigits.db.webhooks import PENDING
from signdigits.files.objects import objects_allowed, parse_object_url
from signdigits.files.paths import IMAGE_EXTENSIONS, inside_allowed_roots, is_object_url, real_path
from signdigits.producer.enqueue import broker_holds_messages_of, enqueue_batches
from signdigits.producer.objects import scan_objects
from signdigits.producer.scan import FolderError, scan_folder
from signdigits.producer.walk import Progress, SubmissionError, Walk
from signdigits.producer.webhooks import job_webhook, send_if_ended
from signdigits.serving.artifact import (
    ArtifactError,
    ModelInfo,
    read_model_info,
    resolve_model_path,
)


@dataclass(frozen=True)
class SubmittedJob:
    job_id: str
    total_images: int
    total_batches: int


@dataclass(frozen=True)
class Resumed:
    resent: int  # batches sent again or for the first time
    lost: bool  # whether batches already sent were sent again (the broker had lost them)
    found: int  # images the finished walk added
    batches: int  # their batches
    on_broker: int = 0  # batches sent before, with pending images, still on the broker


def submit_folder(
    root: Path | str,
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    app: Celery,
    threshold: float | None = None,
    batch_size: int | None = None,
    inline: bool | None = None,
    progress: Progress | None = None,
    on_recorded: Callable[[str], None] | None = None,
    role: str | None = None,
    webhook: str | None = None,
    name: str | None = None,
    error_rows: Sequence[tuple[str, str]] = (),
) -> SubmittedJob:
    """Walk ``root``, writing the job's manifest and enqueueing its batches as it goes.

    The manifest is committed a few thousand images at a time, each part's batches
    enqueued right after, so workers start while a big folder is still being walked. A
    missing or image-less folder, or an unreachable broker, raises before anything is
    recorded. A failure later leaves the job ``submission interrupted`` with the reason,
    and raises :class:`SubmissionError`: ``resume`` finishes it. ``on_recorded`` is
    called with the job's id as soon as its row exists, before the walk goes on (the HTTP
    API answers then, rather than after a million-image walk). ``role`` names the kind
    of process walking (``serve``) in the job's producer, so that a restarted ``serve``
    knows its own interrupted walks. ``name`` is the job's (:class:`JobNameError` if no
    name can be that); the folder's own name by default. ``error_rows``, (path, error)
    each, are files the job has no copy of (an upload's image over the per-file cap):
    recorded with the job's own row, so that a walk resumed after a crash, which sees only
    the folder, never loses them.
    """
    if is_object_url(root):
        # Its workers read the objects themselves, with their own credentials: never
        # bytes in the messages.
        if inline:
            raise FolderError(f"{root}: --inline ships files' bytes in the messages; the "
                              "workers read an s3:// prefix themselves (leave it out)")
        inline = False
        root, paths = _object_source(str(root), settings)
    else:
        root = real_path(root)
        try:
            str(root).encode("utf-8")
        except UnicodeEncodeError:  # the job's root is a text column; its files need not be
            raise FolderError(f"{str(root)!r}: the folder's own name is not UTF-8 "
                              "(rename it or submit a folder above it)") from None
        check_allowed_root(root, settings)
        paths = scan_folder(root)
    webhook_url = job_webhook(webhook, settings)
    if name is not None:
        name = job_name(name)
    else:  # the folder's (or the prefix's) own name
        text = str(root).rstrip("/")
        name = default_job_name(text.rsplit("/", 1)[-1] or text)
    model = serving_model(settings, sessions)
    batch_size = batch_size or settings.batch_size
    inline = settings.inline if inline is None else inline
    from_model = threshold is None and settings.threshold is None
    threshold = _pick_threshold(threshold, settings.threshold, model.default_threshold)
    # A small first part gets every worker busy at once; later parts are larger, as
    # fewer commits make the walk itself faster.
    first = list(islice(paths, batch_size * 4))
    if not first:
        raise FolderError(f"{root}: no images found (looked for {_extensions()})")
    check_broker(app)
    job = Job(
        id=uuid.uuid4().hex, name=name, root=str(root), threshold=threshold, batch_size=batch_size,
        threshold_from_model=from_model,
        total_images=0, total_batches=0, model_version=model.version, inline=inline,
        producer=this_producer(role), producer_seen_at=utcnow(),
        webhook_url=webhook_url, webhook_state=PENDING if webhook_url else None,
    )
    with sessions.begin() as session:
        create_job(session, job=job)
        add_unreachable(session, job_id=job.id, rows=error_rows)
    if on_recorded is not None:
        on_recorded(job.id)
    walk = Walk(job, Path(root), settings=settings, sessions=sessions, app=app,
                 progress=progress)
    total, batches = walk.run(paths, first=first, next_batch=0, skip_recorded=False)
    send_if_ended(app, sessions, job.id)  # every image was stored while it walked
    return SubmittedJob(job.id, total, batches)


def _object_source(url: str, settings: Settings) -> tuple[str, Iterator]:
    """An s3:// job's root as recorded (``s3://bucket/prefix/``) and its listing."""
    try:
        location = parse_object_url(url)
    except ValueError as exc:
        raise FolderError(str(exc)) from None
    if not objects_allowed(location, settings.allowed_roots):
        raise FolderError(f"{location}: outside SIGNDIGITS_ALLOWED_ROOTS")
    return str(location), scan_objects(location)


def _walk_again(root: str) -> Iterator:
    """A recorded job's walk from its start: its folder, or its prefix."""
    if is_object_url(root):
        return scan_objects(parse_object_url(root))
    return scan_folder(Path(root))


def check_broker(app: Celery, *, timeout: float = 5.0) -> None:
    """Connect once, so that a broker that is down costs a clear line and records nothing.

    The CLI asks before it even opens the database, ``submit_folder`` and ``resume_job``
    before they write: without it an unreachable broker shows up only at the first
    enqueue, after the job and its first manifest rows exist.
    """
    # Deadlines on the replies, not only on the connect (kombu's own timeout): a port
    # that accepts and never answers (a wrong service, a stopped container behind a
    # proxy) hung the command for good in the transport's first PING.
    try:
        with app.connection_for_write(transport_options=reply_deadlines(timeout)) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                         timeout=timeout)
    except (BrokerError, OSError, ValueError) as exc:
        url = shown_value("broker_url", app.conf.broker_url)  # no password on the terminal
        raise SubmissionError(f"cannot reach the broker at {url} (SIGNDIGITS_BROKER_URL): "
                              f"{exc}; nothing was recorded") from None


def this_producer(role: str | None = None) -> str:
    """``host:pid``, or ``role@host:pid`` (``db.jobs.producer_alive`` reads both)."""
    return f"{role + '@' if role else ''}{socket.gethostname()}:{os.getpid()}"


def serving_model(settings: Settings, sessions: sessionmaker[Session]) -> ModelInfo:
    """The model the workers will read the job with: the promoted one, else the default.

    Its version and default threshold are the job's. A promoted model whose files this
    process cannot read (a producer without the models folder) falls back to the default:
    the workers then flag by their own model's threshold (worker.thresholds)."""
    with sessions() as session:
        promoted = promoted_model(session)
    if promoted is not None:
        try:
            return read_model_info(model_file(settings.registry_dir, promoted.file))
        except ArtifactError:
            pass
    return read_model_info(resolve_model_path(settings.model_path))


def check_allowed_root(root: Path, settings: Settings) -> None:
    if not inside_allowed_roots(root, settings.allowed_roots):
        raise FolderError(f"{root}: outside SIGNDIGITS_ALLOWED_ROOTS")


def _pick_threshold(*candidates: float | None) -> float:
    value = next(c for c in candidates if c is not None)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"threshold {value} must lie between 0 and 1")
    return value


def _extensions() -> str:
    return ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))


def resume_job(
    app: Celery, *, sessions: sessionmaker[Session], job: Job, settings: Settings,
    lost: bool = False, progress: Progress | None = None, role: str | None = None,
) -> Resumed:
    """Send what the job still needs, once: then finish its walk if it was interrupted.

    Sends every batch with pending images that was never sent. Batches already sent are
    sent again only if the broker holds none of the job's messages (it restarted and lost
    them) or ``lost`` says so: re-sending messages still queued would double the queue.
    An interrupted walk is walked again from the start, in the same order, skipping
    every name already recorded; rows already recorded stay as they are.
    """
    with sessions.begin() as session:
        job = session.get_one(Job, job.id)
        if job.submitted_at is None:
            if producer_alive(job, stall_seconds=settings.stall_seconds):
                raise SubmissionError(f"job {job.id} is still being submitted by "
                                      f"{job.producer}")
            job.producer, job.producer_seen_at = this_producer(role), utcnow()
            job.submission_stopped = None
        batches = unsent_batches(session, job_id=job.id)
        sent_pending = [b for b in pending_batches(session, job_id=job.id) if b not in
                        set(batches)]
        next_batch = next_batch_number(session, job_id=job.id)
        session.expunge(job)
    root = Path(job.root)
    walk = Walk(job, root, settings=settings, sessions=sessions, app=app, progress=progress)
    try:
        check_broker(app)
        lost = bool(sent_pending) and (lost or not broker_holds_messages_of(app, job.id))
        if lost:
            batches = sorted(batches + sent_pending)
        enqueue_batches(app, sessions=sessions, job_id=job.id, batches=batches,
                        root=root if job.inline else None, settings=settings,
                        queued=walk.queued)
    except SubmissionError as exc:
        if job.submitted_at is None:  # this resume had taken the job: give it back
            walk.record_stop(str(exc))
        raise
    except BaseException as exc:  # a traceback had escaped, the job left "submitting"
        walk.stop(exc, walking=job.submitted_at is None)
        raise
    on_broker = 0 if lost else len(sent_pending)
    if job.submitted_at is not None:
        return Resumed(len(batches), lost, 0, 0, on_broker)
    before = next_batch
    walk.run(_walk_again(job.root), first=None, next_batch=next_batch, skip_recorded=True)
    send_if_ended(app, sessions, job.id)
    with sessions() as session:
        after = next_batch_number(session, job_id=job.id)
    return Resumed(len(batches), lost, walk.found, after - before, on_broker)


