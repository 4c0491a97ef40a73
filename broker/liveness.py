"""Which worker holds which message, and giving back the messages of a worker that died.

Each worker's main process writes a heartbeat key every :data:`HEARTBEAT_SECONDS`, with a
time to live of :data:`DEAD_AFTER_SECONDS` (three missed beats): its node name, pid, and
the delivery tags of the messages it holds (reserved, running, or waiting for a retry's
countdown) with their batches. A message in kombu's ``unacked`` hash that was delivered
more than :data:`DEAD_AFTER_SECONDS` ago and that no live heartbeat lists belongs to a
worker that died (SIGKILLed whole, its host gone): it is put back on its queue the way
kombu's own visibility-timeout sweep does (``restore_by_tag``), without waiting for
``SIGNDIGITS_VISIBILITY_TIMEOUT`` (an hour by default). The heartbeat lives on the broker,
not in SQL: restoring acts on the broker's messages by delivery tag, and a message a
worker has reserved but not yet started has no claim in SQL at all.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from celery import Celery

from signdigits.broker.app import glance_deadlines, reply_deadlines
from signdigits.broker.sending import batch_of

HEARTBEAT_SECONDS = 5.0
DEAD_AFTER_SECONDS = 15  # three missed heartbeats
_HEARTBEAT_KEY = "signdigits:worker:"
_PASSES_KEY = "signdigits:reconciler:passes"
_LOCK_KEY = "signdigits:reconciler:lock"


@dataclass(frozen=True)
class Restored:
    tag: str
    batch: tuple[str, int] | None  # (job id, batch) for a batch message
    delivered_seconds_ago: float


def beat(app: Celery, *, node: str, pid: int, held: dict[str, tuple[str, int] | None],
         model: str | None = None) -> None:
    """Write this worker's heartbeat: alive, holding these delivery tags, serving this
    model version (what GET /metrics shows per worker)."""
    entry = json.dumps({"pid": pid, "at": time.time(), "model": model,
                        "held": {tag: batch for tag, batch in held.items()}})
    with app.connection_for_write(transport_options=reply_deadlines()) as connection:
        connection.default_channel.client.set(_HEARTBEAT_KEY + node, entry,
                                              ex=DEAD_AFTER_SECONDS)


def live_workers(client) -> dict[str, dict]:
    """Node name -> its last heartbeat, for every worker that beat in the last
    :data:`DEAD_AFTER_SECONDS`."""
    keys = list(client.scan_iter(match=_HEARTBEAT_KEY + "*", count=1000))
    found = {}
    for key, value in zip(keys, client.mget(keys) if keys else [], strict=True):
        if value is not None:
            found[key.decode().removeprefix(_HEARTBEAT_KEY)] = json.loads(value)
    return found


def workers_online(app: Celery) -> dict[str, dict]:
    """:func:`live_workers` on ``app``'s broker (raises what the broker raises, at once
    when it refuses: a page, a scrape or `status` is waiting)."""
    with app.connection_for_write(transport_options=glance_deadlines()) as connection:
        return live_workers(connection.default_channel.client)


def name_taken(app: Celery, node: str, *, wait: float = HEARTBEAT_SECONDS * 1.5
               ) -> dict | None:
    """The heartbeat of another live worker named ``node``, or None. A key alone is not
    proof: a worker SIGKILLed a moment ago leaves one for :data:`DEAD_AFTER_SECONDS`, and
    its restart must not be refused. So a key found is watched for up to ``wait``
    seconds, and only a beat newer than the one found is (raises what the broker
    raises). Two workers of one name overwrite each other's heartbeat: the reconciler then
    sees one's held batches as no one's and puts them back while they are read."""
    with app.connection_for_write(transport_options=reply_deadlines()) as connection:
        client = connection.default_channel.client
        first = _beat_of(client, node)
        if first is None:
            return None
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = _beat_of(client, node)
            if now is not None and now.get("at", 0) > first.get("at", 0):
                return now
    return None


def _beat_of(client, node: str) -> dict | None:
    value = client.get(_HEARTBEAT_KEY + node)
    return None if value is None else json.loads(value)


def serving_versions(workers: dict[str, dict]) -> dict[str, int]:
    """Model version -> how many of ``workers`` serve it, as their heartbeats say."""
    counts: dict[str, int] = {}
    for beat in workers.values():
        version = str(beat.get("model") or "unknown")
        counts[version] = counts.get(version, 0) + 1
    return counts


def restore_dead_workers_messages(app: Celery) -> list[Restored]:
    """Put back on their queue the unacknowledged messages no live worker holds."""
    restored = []
    with app.connection_for_write(transport_options=reply_deadlines()) as connection:
        channel = connection.default_channel
        client = channel.client
        now = time.time()
        # Old enough that a live holder has beaten since it took them; read before the
        # heartbeats, so a holder that beat is seen.
        old = client.zrange(channel.unacked_index_key, 0, now - DEAD_AFTER_SECONDS,
                            byscore=True, withscores=True)
        if not old:
            return []
        held = {tag for beat in live_workers(client).values() for tag in beat["held"]}
        for tag, delivered in old:
            tag = tag.decode()
            if tag in held:
                continue
            raw = client.hget(channel.unacked_key, tag)
            channel.qos.restore_by_tag(tag, client)
            restored.append(Restored(tag, batch_of(raw) if raw else None, now - delivered))
    return restored


def take_turn(app: Celery, *, node: str, seconds: float) -> bool:
    """Whether this process does the reconciler's pass this period: one process in the
    cluster gets the lock, which expires by itself (a holder that died frees it)."""
    with app.connection_for_write(transport_options=reply_deadlines()) as connection:
        client = connection.default_channel.client
        return bool(client.set(_LOCK_KEY, node, nx=True, px=int(seconds * 1000)))


def count_pass(app: Celery) -> None:
    """One more pass done: what a test (or a person) watches to know it ran."""
    with app.connection_for_write(transport_options=reply_deadlines()) as connection:
        connection.default_channel.client.incr(_PASSES_KEY)


def passes(client) -> int:
    return int(client.get(_PASSES_KEY) or 0)
