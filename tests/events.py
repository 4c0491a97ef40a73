"""The workers' task events (the stream Flower watches), recorded by a test, per batch.

A test that must prove a batch was *not* delivered again cannot read that from the
database: a delivery that finds no pending rows writes nothing. Every delivery does send a
``task-received`` event, so counting those counts deliveries.
"""

from __future__ import annotations

import ast
import threading
import time
from collections import defaultdict

from celery import Celery

_HELLO = "signdigits-test-events-ready"


class BatchEvents:
    """Records ``task-*`` events in a thread; start it before anything is enqueued."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._batch_of: dict[str, tuple[str, int]] = {}  # task id -> (job id, batch)
        self._events: dict[tuple[str, int], list[str]] = defaultdict(list)
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self._receiver = None
        self._thread = threading.Thread(target=self._listen, name="test-events", daemon=True)

    def __enter__(self) -> BatchEvents:
        self._thread.start()
        deadline = time.monotonic() + 15
        # Redis hands events only to subscribers present when they are published: an event
        # of our own coming back proves the subscription is live.
        with self.app.events.default_dispatcher() as dispatcher:
            while not self._subscribed.wait(0.1):
                if time.monotonic() > deadline or not self._thread.is_alive():
                    raise TimeoutError("could not subscribe to the workers' task events")
                dispatcher.send(_HELLO)
        return self

    def __exit__(self, *_exc) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(5)

    def _listen(self) -> None:
        with self.app.connection_for_read() as connection:
            self._receiver = self.app.events.Receiver(connection, handlers={
                _HELLO: lambda _event: self._subscribed.set(), "*": self._record,
            })
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def _record(self, event: dict) -> None:
        kind = event.get("type", "")
        if not kind.startswith("task-"):
            return
        with self._changed:
            if kind == "task-received":
                job_id, batch = ast.literal_eval(event["args"])[:2]
                self._batch_of[event["uuid"]] = (job_id, batch)
            where = self._batch_of.get(event["uuid"])
            if where is not None:
                self._events[where].append(kind.removeprefix("task-"))
            self._changed.notify_all()

    def of(self, job_id: str, batch: int) -> list[str]:
        """The batch's events so far, in order: received, started, retried, succeeded..."""
        with self._changed:
            return list(self._events[(job_id, batch)])

    def wait_for(self, job_id: str, batch: int, until, timeout: float = 120) -> list[str]:
        """Until ``until(events of the batch)`` holds; its events then."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not until(self._events[(job_id, batch)]):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"batch {batch} of job {job_id}: events "
                                         f"{self._events[(job_id, batch)]} after {timeout}s")
                self._changed.wait(left)
            return list(self._events[(job_id, batch)])
