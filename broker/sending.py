"""Sending one batch's task, and finding what the broker still holds of a job's batches.

Both the producer (``submit``, ``resume``) and the workers' reconciler send batches and
ask the broker which ones it still holds; both do it here, so a message looks the same
whoever sent it and "held" means the same thing to both.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery

from signdigits.broker.app import QUEUE, reply_deadlines
from signdigits.broker.messages import TASK_NAME, WEBHOOK_TASK_NAME, display_name

# The slowest link a send's deadline allows for: 10 MB/s, a 100 Mbit/s link with room.
_SEND_BYTES_PER_SECOND = 10e6


@contextmanager
def sender(app: Celery, size: int = 0) -> Iterator:
    """A producer on a connection of its own whose broker replies have a deadline: 5 s,
    plus the time ``size`` bytes take at 10 MB/s (the deadline bounds a whole send, and a
    2.6 MB inline message must still get through a slow link).

    Not the app's pooled producer: its connection waits for ever, and a broker that
    stopped answering mid-walk (SIGSTOPped, a dead proxy) hung the walk for good while
    `status` called the job interrupted.
    """
    deadline = 5.0 + size / _SEND_BYTES_PER_SECOND
    with app.connection_for_write(transport_options=reply_deadlines(deadline)) as connection:
        yield app.amqp.Producer(connection, auto_declare=False)


def send_batch(app: Celery, producer, job_id: str, batch: int, kwargs: dict) -> None:
    # The shadow name is what Flower and the worker logs show for this task.
    app.send_task(TASK_NAME, args=[job_id, batch], kwargs=kwargs, producer=producer,
                  shadow=display_name(job_id, batch))


def _queue_keys(channel) -> list[str]:
    return list(dict.fromkeys(channel._q_for_pri(QUEUE, step) for step in channel.priority_steps))


def held_messages(channel) -> Iterator[bytes]:
    """Every message the broker holds for the batch queue, raw, read in many round trips
    (not one moment: :func:`held_at_once` is): queued ones first, from the newest end
    (kombu pushes there) in growing slices, then those delivered and not yet
    acknowledged (kombu's ``unacked`` hash: one per busy worker process).

    A caller that stops at the first match reads little: reading 100 at a time pulled
    up to the whole inline byte cap (256 MB) out of Redis at each ask. What it does not
    find is not surely gone: a message that moved between the queue and ``unacked``
    while it read (taken by a worker, or put back by kombu's restore) can be in neither
    read; ask :func:`held_at_once` before acting on its absence.
    """
    client = channel.client
    for key in _queue_keys(channel):
        start, step, length = 0, 1, client.llen(key)
        while start < length:
            yield from client.lrange(key, start, start + step - 1)
            start, step = start + step, min(step * 4, 64)
    for _, value in client.hscan_iter(channel.unacked_key):
        yield value


def held_at_once(channel) -> list[bytes]:
    """Every message the broker holds for the batch queue, raw, the queues and the
    ``unacked`` hash read in one MULTI/EXEC transaction: one moment, so a message moving
    from one to the other (kombu's restore moves it in a transaction of its own) is in
    exactly one of them. A whole read: for the batches :func:`held_messages` did not find.

    A message a worker has popped (BRPOP) and kombu has not yet put in ``unacked`` (its
    next command) is in neither at any moment: found again at the next ask (so the
    reconciler asks twice before it sends a batch again: worker.reconciler).
    """
    with channel.client.pipeline(transaction=True) as pipe:
        for key in _queue_keys(channel):
            pipe.lrange(key, 0, -1)
        pipe.hvals(channel.unacked_key)
        return [raw for reply in pipe.execute() for raw in reply]


def batch_of(raw: bytes) -> tuple[str, int] | None:
    """``(job_id, batch)`` of a held batch message (queued, or an ``unacked`` entry), from
    its headers alone: an inline body is megabytes of base64 that need no decoding."""
    try:
        found = json.loads(raw)
        payload = found[0] if isinstance(found, list) else found  # unacked: [msg, ex, rk]
        headers = payload["headers"]
        if headers.get("task") != TASK_NAME:
            return None
        job_id, batch = ast.literal_eval(headers["argsrepr"])[:2]
        return str(job_id), int(batch)
    except (ValueError, KeyError, TypeError, IndexError, SyntaxError):
        return None  # not one of ours, or a shape we do not know: never resent for it


def holds_any_of(app: Celery, job_id: str) -> bool:
    """Whether the broker holds any message of the job (queued or unacknowledged)."""
    needle = job_id.encode()
    with app.connection_for_write(transport_options=reply_deadlines()) as connection:
        channel = connection.default_channel
        return (any(needle in raw for raw in held_messages(channel))
                or any(needle in raw for raw in held_at_once(channel)))


def held_batches(app: Celery, wanted: set[tuple[str, int]]) -> set[tuple[str, int]]:
    """Which of ``wanted`` (job id, batch) the broker holds a message for; it stops
    reading once it found them all, so only a batch truly lost costs a whole read, and
    that read is one moment's (:func:`held_at_once`): a batch moving between the queue
    and ``unacked`` while the reads went on was missed, and sent again for nothing."""
    found: set[tuple[str, int]] = set()
    needles = {job_id.encode() for job_id, _ in wanted}

    def look(messages) -> bool:
        for raw in messages:
            if any(n in raw for n in needles):
                batch = batch_of(raw)
                if batch in wanted:
                    found.add(batch)
                    if found == wanted:
                        return True
        return False

    with app.connection_for_write(transport_options=reply_deadlines()) as connection:
        channel = connection.default_channel
        if not look(held_messages(channel)):
            look(held_at_once(channel))
    return found


def send_webhook(app: Celery, job_id: str, *, attempts: int = 0, countdown: float = 0) -> None:
    """Send the task that makes the job's webhook attempt ``attempts + 1`` (after
    ``countdown`` seconds), on the batch queue."""
    with sender(app) as producer:
        app.send_task(WEBHOOK_TASK_NAME, args=[job_id, attempts], producer=producer,
                      queue=QUEUE, countdown=countdown or None,
                      shadow=f"deliver_webhook job={job_id[:8]} attempt={attempts + 1}")
