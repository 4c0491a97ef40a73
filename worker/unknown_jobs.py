"""Jobs a worker was sent but could not find in its database, reported on the broker.

A worker pointed at another database than the producer's (a relative SQLite path from
another folder, a typo in the URL) cannot write anything the producer's side reads,
except on the broker they share. Each such worker leaves one entry per job here, and
``signdigits status`` shows it next to the job, so a job that stays ``queued`` says why.
Without this, the only trace of the mismatch would be in that worker's own log.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

_KEY = "signdigits:unknown-job:{job_id}"
_FIRST_SEEN = "first_seen"
_KEPT_SECONDS = 7 * 24 * 3600  # longer than any worker keeps putting a batch back


@dataclass(frozen=True)
class UnknownJobReport:
    worker: str
    database: str  # as the worker shows it: password hidden
    seconds_ago: float
    cannot_read: str | None = None  # the job is in its database; its objects unreadable


def _client(broker_url: str) -> redis.Redis:
    # Short timeouts: `status` must answer even when the broker does not.
    return redis.Redis.from_url(broker_url, socket_connect_timeout=3, socket_timeout=3)


def report_unknown_job(broker_url: str, *, job_id: str, worker: str, database: str,
                       cannot_read: str | None = None) -> float:
    """Record that ``worker``, whose database is ``database``, has no job ``job_id`` (or,
    with ``cannot_read``, cannot read its objects, and why).

    Returns how many seconds ago any worker first reported this job unknown: the caller
    decides from it how long to keep putting the job's batches back.
    """
    now = time.time()
    key = _KEY.format(job_id=job_id)
    entry = json.dumps({"database": database, "at": now, "cannot_read": cannot_read})
    with _client(broker_url) as client:
        pipe = client.pipeline()
        pipe.hsetnx(key, _FIRST_SEEN, now)
        pipe.hset(key, f"worker:{worker}", entry)
        pipe.expire(key, _KEPT_SECONDS)
        pipe.hget(key, _FIRST_SEEN)
        first_seen = pipe.execute()[-1]
    return max(0.0, now - float(first_seen or now))


def unknown_job_reports(
    broker_url: str, *, job_ids: list[str]
) -> dict[str, list[UnknownJobReport]]:
    """Per job id, the workers that reported it unknown (none: not in the result)."""
    now = time.time()
    found: dict[str, list[UnknownJobReport]] = {}
    with _client(broker_url) as client:
        pipe = client.pipeline()
        for job_id in job_ids:
            pipe.hgetall(_KEY.format(job_id=job_id))
        for job_id, fields in zip(job_ids, pipe.execute(), strict=True):
            for name, value in fields.items():
                name = name.decode()
                if not name.startswith("worker:"):
                    continue
                entry = json.loads(value)
                found.setdefault(job_id, []).append(UnknownJobReport(
                    name.removeprefix("worker:"), entry["database"], now - entry["at"],
                    entry.get("cannot_read")))
    return found
