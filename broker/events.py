"""The workers' task events (the stream Flower watches), heard in a thread of this process.

One listener for whoever needs them: ``bench`` waits on it for a job's last task instead
of probing the database many times a second (a probe of SQLite while the workers write
to it cost ~0.7 ms of CPU, ~0.5 CPU-s of a 10,000-image run, taken from the very cores
being measured), and the tests read from it what the database cannot say: how many times
a batch was delivered (a delivery that finds no pending rows writes nothing, but every
delivery sends ``task-received``) and that a task ended.

What it keeps:

- per batch, the kinds of its tasks' events in order (``sent``, ``received``,
  ``started``, ``retried``, ``succeeded``, ``failed``...), to read or wait on;
- completions: the tasks that succeeded or failed, and once told how many to expect,
  when that many have;
- the seconds the succeeded tasks spent, in all (``runtime``) and per phase of a batch
  (each task returns its phases, and the ``task-succeeded`` event carries that value).

Redis hands events only to subscribers present when they are published: :meth:`start`
returns once an event of its own has come back, so start it before anything is sent.
"""

from __future__ import annotations

import ast
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable

from celery import Celery

_HELLO = "signdigits-listener-ready"
# A batch's task is sent with args (job id, batch[, inline bytes]); events carry their repr,
# cut short by Celery past ~1 KB (an --inline batch's), so only its start is read.
_JOB_AND_BATCH = re.compile(r"""\A[\[(]\s*'([^'\\]*)',\s*(\d+)\s*[,\])]""")


class TaskEvents:
    """Listens for ``task-*`` events on the app's broker until :meth:`stop`.

    ``history=False`` keeps no per-batch record, only the completions and seconds (what
    a long-lived listener, or one on a measured machine, needs).
    """

    def __init__(self, app: Celery, *, history: bool = True) -> None:
        self.app = app
        self.history = history
        self.expected: int | None = None  # known once the producer has cut the last batch
        self.finished_at: float | None = None  # perf_counter of the expected count's event
        # Its hello carries this: two listeners in one process cannot take each other's.
        self.listener_id = uuid.uuid4().hex
        self._changed = threading.Condition()
        self._batch_of: dict[str, tuple[str, int]] = {}  # task id -> (job id, batch)
        self._events: dict[tuple[str, int], list[dict]] = defaultdict(list)
        self._succeeded: set[str] = set()
        self._failed: dict[str, str] = {}  # task id -> the exception it ended with
        self._seconds: dict[str, float] = defaultdict(float)
        self._last_finish_at: float | None = None
        self._subscribed = threading.Event()
        self._done = threading.Event()
        self._receiver = None
        self._thread = threading.Thread(target=self._listen, name="task-events", daemon=True)

    # --- listening ------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> TaskEvents:
        """Subscribe; returns once the subscription is live (TimeoutError, and stopped, if
        it is not)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        with self.app.events.default_dispatcher() as dispatcher:
            while not self._subscribed.wait(0.1):
                if time.monotonic() > deadline or not self._thread.is_alive():
                    self.stop()
                    raise TimeoutError("could not subscribe to the workers' task events")
                dispatcher.send(_HELLO, listener=self.listener_id)
        return self

    @property
    def subscribed(self) -> bool:
        """Whether its own hello has come back: events published now reach it."""
        return self._subscribed.is_set()

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        if self._thread.is_alive():
            self._thread.join(5)

    def __enter__(self) -> TaskEvents:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def _listen(self) -> None:
        with self.app.connection_for_read() as connection:
            receiver = self.app.events.Receiver(connection, handlers={"*": self.handle})
            self._receiver = receiver
            receiver.capture(limit=None, timeout=None, wakeup=False)

    def handle(self, event: dict) -> None:
        """Take in one event as the receiver hands it over (public: the rules here are
        tested on made-up events, without a broker)."""
        kind = event.get("type", "")
        if kind == _HELLO:
            if event.get("listener") == self.listener_id:
                self._subscribed.set()
            return
        if not kind.startswith("task-"):
            return
        task = event.get("uuid", "")
        with self._changed:
            if self.history:
                where = self._batch_of.get(task) or job_and_batch(event.get("args"))
                if where is not None:
                    self._batch_of[task] = where
                    self._events[where].append(event)
            if kind in ("task-succeeded", "task-failed"):
                self._finished(task, event)
            self._changed.notify_all()

    def _finished(self, task: str, event: dict) -> None:
        self._last_finish_at = time.perf_counter()
        if event["type"] == "task-succeeded":
            self._succeeded.add(task)
            self._seconds["runtime"] += event.get("runtime") or 0.0
            for phase, seconds in phases(event.get("result")).items():
                self._seconds[phase] += seconds
        else:
            self._failed[task] = event.get("exception", "")
        self._check()

    # --- a batch's history -------------------------------------------------------------

    def of(self, job_id: str, batch: int) -> list[str]:
        """The batch's event kinds so far, in order: sent, received, started, retried,
        succeeded..."""
        with self._changed:
            return self._kinds(job_id, batch)

    def events_of(self, job_id: str, batch: int) -> list[dict]:
        """The batch's events themselves, in order."""
        with self._changed:
            return list(self._events[(job_id, batch)])

    def wait_for(self, job_id: str, batch: int, until: Callable[[list[str]], bool],
                 timeout: float = 120) -> list[str]:
        """Until ``until(the batch's event kinds)`` holds; those kinds then.

        AssertionError past ``timeout``, naming the batch and the events it had.
        """
        if not self.history:
            raise ValueError("this listener keeps no history (history=False)")
        deadline = time.monotonic() + timeout
        with self._changed:
            while not until(kinds := self._kinds(job_id, batch)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"batch {batch} of job {job_id}: events {kinds} "
                                         f"after {timeout:g} s")
                self._changed.wait(left)
            return kinds

    def _kinds(self, job_id: str, batch: int) -> list[str]:
        return [e["type"].removeprefix("task-") for e in self._events[(job_id, batch)]]

    # --- completions -----------------------------------------------------------------

    def expect(self, count: int) -> None:
        """Wait for ``count`` tasks: set once known, even after they have all finished.

        A job's batch count is the producer's to decide (its last batches halve), so it is
        read from the job, not computed from the image count and batch size.
        """
        with self._changed:
            self.expected = count
            self._check()

    def wait(self, timeout: float) -> bool:
        """True once ``expected`` tasks have finished (failed ones included)."""
        return self._done.wait(timeout)

    @property
    def succeeded(self) -> set[str]:
        with self._changed:
            return set(self._succeeded)

    @property
    def failed(self) -> dict[str, str]:
        """Task id -> the exception of each task that failed."""
        with self._changed:
            return dict(self._failed)

    @property
    def finished(self) -> int:
        """Tasks that succeeded or failed."""
        with self._changed:
            return len(self._succeeded) + len(self._failed)

    @property
    def task_seconds(self) -> dict[str, float]:
        """Seconds the succeeded tasks spent: ``runtime``, and each phase of a batch."""
        with self._changed:
            return dict(self._seconds)

    def _check(self) -> None:
        finished = len(self._succeeded) + len(self._failed)
        if self.expected is None or finished < self.expected or self._done.is_set():
            return
        self.finished_at = self._last_finish_at
        self._done.set()


def job_and_batch(args: object) -> tuple[str, int] | None:
    """(job id, batch) from a batch task's args as its events carry them, or None."""
    found = _JOB_AND_BATCH.match(args) if isinstance(args, str) else None
    return (found.group(1), int(found.group(2))) if found else None


def phases(result: object) -> dict[str, float]:
    """The ``seconds`` of a task's return value, which the event carries as its repr."""
    try:
        value = ast.literal_eval(result) if isinstance(result, str) else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):  # cut short, or no literal
        return {}
    seconds = value.get("seconds") if isinstance(value, dict) else None
    if not isinstance(seconds, dict):
        return {}
    try:
        return {str(k): float(v) for k, v in seconds.items()}
    except (TypeError, ValueError):
        return {}
