"""The walk of one job's folder (or prefix), part by part: its names recorded in the
manifest, then the batches they fill sent, the job's heartbeat written as it goes; and
how a job's images are cut into batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from signdigits.config.settings import Settings
from signdigits.db.jobs import (
    cancel_job,
    count_rows,
    lock_job,
)
from signdigits.db.manifest import add_manifest, add_unreachable, recorded_names
from signdigits.db.models import Job, utcnow
from signdigits.producer.enqueue import QueuedBytes, broker_holds_messages_of, enqueue_batches
from signdigits.producer.objects import ListedObject
from signdigits.producer.scan import Unreachable

_MANIFEST_CHUNK = 5000
_SMALLEST_TAIL = 16  # images in the smallest batch of a job's shaped tail

Progress = Callable[[str, int], None]


class SubmissionError(ValueError):
    """The submission could not go on; the message says why and what to run next."""


class Walk:
    """The walk of one job's folder, part by part: rows recorded, then their batches sent."""

    def __init__(self, job: Job, root: Path, *, settings: Settings,
                 sessions: sessionmaker[Session], app: Celery, progress: Progress | None):
        self.job_id, self.batch_size, self.root = job.id, job.batch_size, root
        self.inline = job.inline
        self.settings, self.sessions, self.app = settings, sessions, app
        self.progress = progress or (lambda stage, n: None)
        self.found = 0
        self.cancelled = False  # seen by the part that found the job cancelled
        self.first_part = job.batch_size * 4
        self.queued = QueuedBytes(
            cap=settings.inline_max_queued_bytes, sessions=sessions, job_id=job.id,
            waiting=self._waiting, held=lambda: broker_holds_messages_of(app, job.id),
        ) if job.inline else None

    def run(self, walk: Iterator, *, first: list | None, next_batch: int,
            skip_recorded: bool) -> tuple[int, int]:
        """Record and send the walk part by part (``first`` is its first, already taken);
        then mark the job submitted. Returns the job's image rows and batches."""
        # Whole batches per part, so no batch is enqueued before all of its rows exist.
        part_size = self.batch_size * max(1, _MANIFEST_CHUNK // self.batch_size)
        wanted = self.first_part
        part = first if first is not None else list(islice(walk, wanted))
        batch = next_batch
        try:
            while part:
                # A part shorter than asked for is the walk's last: its tail can be shaped.
                batch = self._record(part, batch, last=len(part) < wanted,
                                     skip_recorded=skip_recorded)
                self.progress("found and enqueued", self.found)
                if self.cancelled or self._cancel_seen():
                    break  # the end below cancels what the walk recorded
                wanted = part_size
                part = list(islice(walk, wanted))
            with self.sessions.begin() as session:
                job = lock_job(session, job_id=self.job_id)
                if job.cancelled_at is not None:  # the walk's end is the cancel's answer
                    cancel_job(session, job_id=self.job_id)
                job.total_images, job.total_batches = count_rows(session, job_id=self.job_id)
                job.submitted_at = utcnow()
                job.producer = None
                return job.total_images, job.total_batches
        except BaseException as exc:
            self.stop(exc)
            raise

    def stop(self, exc: BaseException, *, walking: bool = True) -> None:
        """Record why the submission stopped (``walking``: the job is no longer being
        submitted, so `status` says so and `resume` may take it) and raise it as one line;
        returns for a KeyboardInterrupt or other BaseException, which the caller re-raises."""
        reason = f"stopped after {self.found:,} images: {one_line(exc)}"
        if walking:
            self.record_stop(reason)
        if isinstance(exc, Exception):
            raise SubmissionError(
                f"job {self.job_id}: submission {reason}; `signdigits resume "
                f"{self.job_id}` finishes it") from exc

    def record_stop(self, reason: str) -> None:
        try:
            with self.sessions.begin() as session:
                job = session.get_one(Job, self.job_id)
                job.submission_stopped, job.producer = reason, None
        except Exception:  # noqa: BLE001 - the database may be why it stopped
            pass

    def _record(self, part: list, batch: int, *, last: bool, skip_recorded: bool) -> int:
        files = [p if type(p) is str else p.path for p in part if type(p) is not Unreachable]
        unreachable = [(p.path, p.reason) for p in part if type(p) is Unreachable]
        # An object's ETag, kept beside its key: a worker reads only that object.
        etags = {p.path: p.etag for p in part if type(p) is ListedObject}
        if skip_recorded:
            with self.sessions() as session:
                done = recorded_names(session, job_id=self.job_id,
                                      names=files + [p for p, _ in unreachable])
            files = [p for p in files if p not in done]
            unreachable = [u for u in unreachable if u[0] not in done]
        sizes = batch_sizes(len(files), self.batch_size, last=last) if files else []
        numbers = [batch + n for n, size in enumerate(sizes) for _ in range(size)]
        with self.sessions.begin() as session:
            add_manifest(session, job_id=self.job_id, rows=[
                (number, name, etags.get(name)) for number, name in zip(numbers, files,
                                                                        strict=True)])
            add_unreachable(session, job_id=self.job_id, rows=unreachable)
            # The job is locked after the rows are written: a cancel committed before is
            # seen here, and one committed after finds these rows (db.jobs.lock_job).
            job = lock_job(session, job_id=self.job_id)
            job.producer_seen_at = utcnow()
            if job.cancelled_at is not None:  # this part came after the cancel: skipped too
                cancel_job(session, job_id=self.job_id)
                self.cancelled = True
        self.found += len(files) + len(unreachable)
        if self.cancelled:
            return batch + len(sizes)  # nothing to send: a worker would only skip them
        enqueue_batches(
            self.app, sessions=self.sessions, job_id=self.job_id,
            batches=range(batch, batch + len(sizes)), root=self.root if self.inline else None,
            settings=self.settings, queued=self.queued,
        )
        return batch + len(sizes)

    def _cancel_seen(self) -> bool:
        """Between parts, before the next is walked: a cancel then records no more rows."""
        with self.sessions() as session:
            return session.get_one(Job, self.job_id).cancelled_at is not None

    def _waiting(self, queued: int) -> None:
        """Held back by SIGNDIGITS_INLINE_MAX_QUEUED_BYTES: said, and the job told we live."""
        cap = self.settings.inline_max_queued_bytes
        self.progress(f"found and enqueued; waiting for workers: {queued / 1e6:,.1f} MB "
                      f"queued, SIGNDIGITS_INLINE_MAX_QUEUED_BYTES is {cap / 1e6:,.1f} MB",
                      self.found)
        with self.sessions.begin() as session:
            session.get_one(Job, self.job_id).producer_seen_at = utcnow()


def one_line(exc: BaseException) -> str:
    """A database error's own first line: SQLAlchemy's adds the statement and a link on
    lines of their own, which `status` showed in the job's table."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{cause.__class__.__name__}: {lines[0] if lines else ''}".rstrip(": ")


def batch_sizes(count: int, batch_size: int, *, last: bool) -> list[int]:
    """How ``count`` images are cut into batches: full ones, and at a job's end, halving.

    Every worker is busy until the queue runs dry; then each finishes the batch it holds,
    and the job waits for the slowest. With equal batches that wait averages half a batch
    on a process that has nothing else to do. So a job's last full batch and its remainder
    go out as batches that halve until fewer than ``2 * _SMALLEST_TAIL`` images are left
    (128 + 40 images: 84, 42, 21, 21), and the last to finish holds little.
    """
    full, rest = divmod(count, batch_size)
    if not last or batch_size <= 2 * _SMALLEST_TAIL:
        return [batch_size] * full + ([rest] if rest else [])
    # A job smaller than one batch is cut too, or it would keep a single worker busy.
    sizes = [batch_size] * (full - 1) if full else []
    tail = batch_size + rest if full else rest
    while tail > 2 * _SMALLEST_TAIL:
        sizes.append(tail // 2)
        tail -= tail // 2
    return [*sizes, tail]


