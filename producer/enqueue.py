"""Sending a job's batches: one task each, marked sent, and for --inline, held back.

An ``--inline`` message carries its batch's image bytes (~2.6 MB for 128 photos), and a
producer reads files far faster than workers classify them: unchecked, a million-image
job would park ~57 GB in Redis. :class:`QueuedBytes` keeps the messages this producer has
sent and the database does not yet show finished under
``SIGNDIGITS_INLINE_MAX_QUEUED_BYTES``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from signdigits.broker.sending import holds_any_of, send_batch, sender
from signdigits.config.settings import Settings
from signdigits.db.batches import mark_enqueued, pending_images, still_pending
from signdigits.files.reading import ImageError, JobFolder

_POLL_SECONDS = 0.25  # how often a held-back producer asks the database for finished batches
HELD_CHECK_SECONDS = 5.0  # and, none finishing, the broker whether it still holds them
# Kombu's Redis transport base64-encodes the JSON body inside a JSON envelope of headers.
_ENVELOPE_BYTES = 1500


class MessagesLost(RuntimeError):
    """The broker holds none of the job's messages while their batches are unfinished."""


class QueuedBytes:
    """The bytes of this producer's sent messages whose batches still have pending images."""

    def __init__(self, *, cap: int, sessions: sessionmaker[Session], job_id: str,
                 waiting: Callable[[int], None], held: Callable[[], bool]) -> None:
        self.cap = cap
        self.sessions = sessions
        self.job_id = job_id
        self.waiting = waiting  # told the bytes queued, each time the producer waits
        self.held = held  # whether the broker still holds any message of the job
        self.sent: dict[int, int] = {}

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    def make_room(self, size: int) -> None:
        """Return once a message of ``size`` bytes fits under the cap (at once if none
        is outstanding: a batch bigger than the cap still goes, alone)."""
        asked_at, missing, waiting_on = time.monotonic(), 0, set(self.sent)
        while self.sent and self.total + size > self.cap:
            with self.sessions() as session:
                left = still_pending(session, job_id=self.job_id, batches=list(self.sent))
            self.sent = {b: n for b, n in self.sent.items() if b in left}
            if self.sent and self.total + size > self.cap:
                # A broker restarted without persistence lost what was queued, and those
                # batches never finish: the producer waited for good, "submitting". So
                # when none finished for a while, the broker is asked (it reads messages);
                # twice in a row, as a message a worker is taking is briefly in neither place.
                if time.monotonic() - asked_at >= HELD_CHECK_SECONDS:
                    asked_at = time.monotonic()
                    finished_some = not waiting_on <= set(self.sent)
                    waiting_on = set(self.sent)
                    missing = 0 if finished_some or self.held() else missing + 1
                    if missing == 2:
                        raise MessagesLost(
                            f"the broker holds none of the {len(self.sent)} unfinished "
                            "batches sent (it lost them: restarted without persistence?)")
                self.waiting(self.total)
                time.sleep(_POLL_SECONDS)

    def add(self, batch: int, size: int) -> None:
        self.sent[batch] = size


def enqueue_batches(
    app: Celery,
    *,
    sessions: sessionmaker[Session],
    job_id: str,
    batches: Sequence[int],
    root: Path | None,
    settings: Settings,
    queued: QueuedBytes | None = None,
) -> int:
    """Send one task per batch and mark it sent; with ``root`` set, the image bytes
    travel inside them, each sent only once ``queued`` has room for it.

    A batch is marked after its message is sent, never before: a producer killed in
    between leaves it unmarked, and ``resume`` sends it again (a duplicate delivery
    changes no result) rather than never.
    """
    sent: list[int] = []
    try:
        if root is None:  # small messages, one connection
            with sender(app) as producer:
                for batch in batches:
                    send_batch(app, producer, job_id, batch, {})
                    sent.append(batch)
            return len(batches)
        for batch in batches:
            inline = read_inline(sessions, job_id=job_id, batch=batch, root=root,
                                 settings=settings)
            size = message_bytes(inline)
            if queued is not None:
                queued.make_room(size)
            with sender(app, size) as producer:  # a big message: its own deadline
                send_batch(app, producer, job_id, batch, {"inline": inline})
            if queued is not None:
                queued.add(batch, size)
            _mark(sessions, job_id, [batch])  # marked at once
    finally:
        _mark(sessions, job_id, sent)
    return len(batches)


def _mark(sessions: sessionmaker[Session], job_id: str, batches: list[int]) -> None:
    if batches:
        with sessions.begin() as session:
            mark_enqueued(session, job_id=job_id, batches=batches)


def message_bytes(inline: dict) -> int:
    """What the message will occupy in Redis: its JSON, base64-encoded, and the envelope."""
    return len(json.dumps(inline)) * 4 // 3 + _ENVELOPE_BYTES


def read_inline(
    sessions: sessionmaker[Session], *, job_id: str, batch: int, root: Path, settings: Settings
) -> dict[str, dict[str, str]]:
    """Image id -> ``{"data": base64}``, or ``{"error": message}`` for a file that cannot go.

    The producer reads with the same size cap and messages as a worker would, so a worker
    that cannot see this disk still stores the right error for an oversized or unreadable
    file, and a failed read never fails the job.
    """
    with sessions() as session:
        images = pending_images(session, job_id=job_id, batch=batch)
    cap = min(settings.max_file_bytes, settings.inline_max_file_bytes)
    folder = JobFolder(root, allowed_roots=settings.allowed_roots)
    payload: dict[str, dict[str, str]] = {}
    for image in images:
        try:
            data = folder.read(image.path, max_bytes=cap)
            payload[str(image.id)] = {"data": base64.b64encode(data).decode("ascii")}
        except ImageError as exc:
            payload[str(image.id)] = {"error": str(exc)}
    return payload


def broker_holds_messages_of(app: Celery, job_id: str) -> bool:
    """Whether the broker still holds any message of the job: queued, or delivered to a
    worker and not yet acknowledged (kombu keeps those in its ``unacked`` hash).

    ``resume`` asks it once, to tell a queue that lost the job's messages from one still
    working on them; a held-back ``--inline`` producer asks it every few seconds.
    """
    return holds_any_of(app, job_id)
