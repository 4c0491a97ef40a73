"""What the broker holds of a job's batches, asked while messages move, on a real Valkey.

A batch message is either queued or delivered and not yet acknowledged (kombu's
``unacked`` hash); kombu's restore moves one back to the queue in a transaction of its
own. Read in two round trips (the queue, then the hash), a message put back between them
was in neither read, and the reconciler sent its batch again for nothing. Here a thread
moves one message back and forth, each move one transaction as kombu's restore is, while
the test asks hundreds of times: it must be found every time.
"""

from __future__ import annotations

import json
import threading

import pytest

from signdigits.broker.app import QUEUE, create_app
from signdigits.broker.sending import held_batches, holds_any_of, send_batch, sender
from signdigits.config.settings import Settings
from tests.waiting import broker_client

JOB = "a" * 32
ASKS = 300


@pytest.fixture
def app(redis_url, tmp_path):
    url = redis_url.rsplit("/", 1)[0] + "/7"  # a database of its own: others' queues apart
    client = broker_client(url)
    client.flushdb()
    yield create_app(Settings(broker_url=url, database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    client.flushdb()


def test_a_batch_moving_between_the_queue_and_unacked_is_always_found(app):
    client = broker_client(app.conf.broker_url)
    with sender(app) as producer:
        send_batch(app, producer, JOB, 4, {})
    (queued,) = client.lrange(QUEUE, 0, -1)
    delivered = json.dumps([json.loads(queued), "", QUEUE])  # as kombu stores it
    assert held_batches(app, {(JOB, 4)}) == {(JOB, 4)}

    stop = threading.Event()
    moves = [0]

    def move() -> None:  # taken, then put back: each move one transaction
        mover = broker_client(app.conf.broker_url)
        while not stop.is_set():
            with mover.pipeline(transaction=True) as step:
                step.lrem(QUEUE, 0, queued).hset("unacked", "tag-4", delivered).execute()
            with mover.pipeline(transaction=True) as step:
                step.hdel("unacked", "tag-4").lpush(QUEUE, queued).execute()
            moves[0] += 2

    thread = threading.Thread(target=move, daemon=True)
    thread.start()
    try:
        missed = sum(held_batches(app, {(JOB, 4)}) != {(JOB, 4)} for _ in range(ASKS))
        missed_job = sum(not holds_any_of(app, JOB) for _ in range(ASKS))
    finally:
        stop.set()
        thread.join(10)
    assert moves[0] > ASKS, moves  # it did move while asked
    assert (missed, missed_job) == (0, 0)
    # Gone from both: not held (the one answer that sends it again).
    client.lrem(QUEUE, 0, queued)
    client.hdel("unacked", "tag-4")
    assert held_batches(app, {(JOB, 4)}) == set() and not holds_any_of(app, JOB)
