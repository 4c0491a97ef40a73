"""Know when a number of Celery tasks has finished, from the events Flower also watches."""

from __future__ import annotations

import ast
import threading
import time
from collections import Counter

from celery import Celery

_HELLO = "signdigits-watcher-ready"


class TaskCompletions:
    """Counts ``task-succeeded`` and ``task-failed`` events on the broker, in a thread.

    ``bench`` waits on this instead of probing the database many times a second: a probe
    of SQLite while the workers write to it cost ~0.7 ms of CPU, ~0.5 CPU-s of a
    10,000-image run, taken from the very cores being measured. Events sent before
    :meth:`start` returns are missed, so start it before anything is enqueued.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.expected: int | None = None  # known once the producer has cut the last batch
        self.succeeded: set[str] = set()
        self.failed: dict[str, str] = {}
        self.finished_at: float | None = None  # perf_counter of the expected count's event
        self._last_event_at: float | None = None
        self._lock = threading.Lock()
        # Seconds the tasks spent, in all (``runtime``) and per phase of a batch, summed
        # over the tasks: each task returns its phases, and the event carries that value.
        self.task_seconds: Counter[str] = Counter()
        self._subscribed = threading.Event()
        self._done = threading.Event()
        self._receiver = None
        self._thread = threading.Thread(target=self._listen, name="task-events", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        # An event of our own proves the subscription is live: Redis delivers events only
        # to subscribers present when they are published.
        with self.app.events.default_dispatcher() as dispatcher:
            while not self._subscribed.wait(0.1):
                if time.monotonic() > deadline or not self._thread.is_alive():
                    raise TimeoutError("could not subscribe to the workers' task events")
                dispatcher.send(_HELLO)

    def expect(self, count: int) -> None:
        """Wait for ``count`` tasks: set once known, even after they have all finished.

        A job's batch count is the producer's to decide (its last batches halve), so it is
        read from the job, not computed here from the image count and batch size.
        """
        with self._lock:
            self.expected = count
            self._check()

    def wait(self, timeout: float) -> bool:
        """True once ``expected`` tasks have finished (failed ones included)."""
        return self._done.wait(timeout)

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(5)

    def _listen(self) -> None:
        with self.app.connection_for_read() as connection:
            self._receiver = self.app.events.Receiver(connection, handlers={
                _HELLO: lambda _event: self._subscribed.set(),
                "task-succeeded": lambda event: self._finished(event, error=None),
                "task-failed": lambda event: self._finished(event, error=event["exception"]),
            })
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def _finished(self, event: dict, *, error: str | None) -> None:
        with self._lock:
            self._last_event_at = time.perf_counter()
            if error is None:
                self.succeeded.add(event["uuid"])
                self.task_seconds["runtime"] += event.get("runtime") or 0.0
                self.task_seconds.update(_phases(event.get("result")))
            else:
                self.failed[event["uuid"]] = error
            self._check()

    def _check(self) -> None:
        finished = len(self.succeeded) + len(self.failed)
        if self.expected is None or finished < self.expected or self._done.is_set():
            return
        self.finished_at = self._last_event_at
        self._done.set()
        if self._receiver is not None:
            self._receiver.should_stop = True


def _phases(result: object) -> dict[str, float]:
    """The ``seconds`` of a task's return value, which the event carries as its repr."""
    try:
        value = ast.literal_eval(result) if isinstance(result, str) else None
    except (ValueError, SyntaxError):  # a repr Celery cut short, or not a literal
        return {}
    seconds = value.get("seconds") if isinstance(value, dict) else None
    return {k: float(v) for k, v in seconds.items()} if isinstance(seconds, dict) else {}
