"""Crashes, restarts and outages: every image of the job ends with exactly one row."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from signdigits.bench import procstat
from signdigits.stack.valkey import RedisServer, free_port
from tests.conftest import Stack, account, copy_sample, require
from tests.figures import record
from tests.holds import BatchHolds
from tests.waiting import wait_until


def _not_done(rows) -> list:
    return [(r.batch, r.status, r.error) for r in rows if r.status != "done"]


@pytest.fixture
def sqlite_stack(redis_url, tmp_path):
    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'results.db'}", tmp_path,
                  visibility_timeout=8, stall_seconds=3, max_attempts=3)
    yield stack
    stack.stop()


@pytest.fixture
def counting_stack(redis_url, tmp_path):
    """For tests that count deliveries: no visibility timeout expires during the test.

    An unacknowledged message older than the timeout is delivered once more (at least
    once); with 8 s, a batch that waited for a restarting pool process was, once in two
    runs, and a count of deliveries would measure the machine's load.
    """
    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'results.db'}", tmp_path,
                  visibility_timeout=600, stall_seconds=3, max_attempts=3)
    yield stack
    stack.stop()


def test_child_killed_mid_batch_is_redelivered(sqlite_stack, dataset, tmp_path):
    stack = sqlite_stack
    truth = copy_sample(dataset, tmp_path / "photos", per_digit=4)
    worker = stack.start_worker(concurrency=1, faults=True, SIGNDIGITS_TEST_HOLD_BATCHES="1")
    holds = BatchHolds(stack.broker_url)
    job_id = stack.submit(tmp_path / "photos", "--batch-size", "8")
    child = holds.wait_held(job_id, 1)  # claimed: its attempt counted, its rows pending
    assert child in procstat.children(worker.process.pid), "not a pool process of the worker"
    os.kill(child, signal.SIGKILL)
    again = holds.wait_held(job_id, 1)  # the batch came back, to a new pool process
    assert again != child and again in procstat.children(worker.process.pid), (child, again)
    holds.release(job_id, 1)
    stack.wait_for(job_id, timeout=120)
    rows = stack.rows(job_id)
    figures = account(rows, list(truth))
    record("worker child SIGKILLed mid-batch", figures)
    assert figures == {"submitted": 40, "rows": 40, "missing": 0, "duplicates": 0}
    assert all(r.status == "done" for r in rows), _not_done(rows)
    # Tries, not deliveries (counting_stack's concern), so the 8 s visibility timeout may
    # stay: a try is counted only while the batch has pending rows, and the one pool
    # process takes one delivery at a time, so a copy delivered again (the timeout, the
    # reconciler) after the rows were stored counts nothing.
    assert max(r.attempts for r in rows if r.batch == 1) == 2  # the killed try, then one more
    # The death is one line in the worker's log (worker/lost.py), not billiard's traceback.
    log = worker.log.read_text(errors="replace")
    assert "a pool process died while it ran a task (Worker exited prematurely: signal 9" in log
    assert "mark_as_worker_lost" not in log, log[-3000:]


def test_whole_worker_killed_another_finishes(sqlite_stack, dataset, tmp_path):
    stack = sqlite_stack
    truth = copy_sample(dataset, tmp_path / "photos", per_digit=4)
    doomed = stack.start_worker(concurrency=1, faults=True, SIGNDIGITS_TEST_HOLD_BATCHES="0")
    job_id = stack.submit(tmp_path / "photos", "--batch-size", "8")
    BatchHolds(stack.broker_url).wait_held(job_id, 0)  # never released: its worker dies
    os.killpg(doomed.process.pid, signal.SIGKILL)  # the worker and its children, no goodbye
    doomed.process.wait()
    killed_at = time.monotonic()
    stack.start_worker(concurrency=1)
    stack.wait_for(job_id, timeout=120)
    rows = stack.rows(job_id)
    figures = account(rows, list(truth))
    figures["recovered after s"] = round(time.monotonic() - killed_at, 1)
    record("whole worker SIGKILLed mid-batch (visibility timeout 8 s)", figures)
    assert figures["rows"] == 40 and figures["missing"] == 0 and figures["duplicates"] == 0
    assert all(r.status == "done" for r in rows), _not_done(rows)


def test_broker_lost_then_resume(tmp_path, dataset):
    port = free_port()
    broker = RedisServer(port=port)
    broker.start()
    stack = Stack(f"redis://127.0.0.1:{port}/0", f"sqlite:///{tmp_path / 'r.db'}", tmp_path,
                  stall_seconds=3)
    try:
        truth = copy_sample(dataset, tmp_path / "photos", per_digit=6)
        # The operator's way, which stays: the worker's reconciler would re-send the lost
        # batches itself after its stall period (test_recovery.py), so its period is long.
        stack.start_worker(concurrency=1, faults=True, SIGNDIGITS_TEST_HOLD_BATCHES="1",
                           SIGNDIGITS_STALL_SECONDS="3600")
        holds = BatchHolds(stack.broker_url)
        job_id = stack.submit(tmp_path / "photos", "--batch-size", "6")
        holds.wait_held(job_id, 1)  # batch 0 stored, 1 in flight, 2-9 queued
        broker.stop()  # no persistence: every queued message is gone
        broker = RedisServer(port=port)
        broker.start()
        holds.release(job_id, 1)  # on the new broker, where the held batch asks again
        # The in-flight batch finishes, then nothing moves: the job goes stalled.
        stack.wait_for(job_id, until=lambda c: c.get("done", 0) == 12)
        stack.wait_for_summary(job_id, until=lambda s: s.stalled)
        pending = stack.counts(job_id).get("pending", 0)
        assert pending == 48, "the queued batches were not lost; the test proves nothing"
        status = stack.cli("status", job_id)
        assert "stalled" in status.stdout, status.stdout
        resumed = stack.cli("resume", job_id)
        assert resumed.returncode == 0, resumed.stderr
        stack.wait_for(job_id, timeout=120)
        rows = stack.rows(job_id)
        figures = account(rows, list(truth))
        figures["pending when resumed"] = pending
        record("broker restarted without persistence, then resume", figures)
        assert figures["rows"] == 60 and figures["missing"] == 0 and figures["duplicates"] == 0
        assert all(r.status == "done" for r in rows)
        assert stack.summary(job_id).state == "done"  # not "done with errors", not stalled
        status = stack.cli("status", job_id)
        assert status.returncode == 0 and "stalled" not in status.stdout, status.stdout
    finally:
        stack.stop()
        broker.stop()


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (initdb/pg_ctl) on its own port, stoppable at will."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: that is private to root, and PostgreSQL refuses to
        # run as root, so the server runs as the postgres user in a folder it can reach.
        self.base = Path(tempfile.mkdtemp(prefix="signdigits-pg-"))
        self.base.chmod(0o755)
        self.folder, self.port = self.base / "cluster", free_port()
        self.folder.mkdir()
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.folder, self.user)
        self._run(["initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres"])

    def _run(self, command: list[str]) -> None:
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._run(["pg_ctl", "-D", str(self.folder / "data"), "-o", options, "-w", "-l",
                   str(self.folder / "log"), "start"])

    def stop(self) -> None:
        self._run(["pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"])

    def remove(self) -> None:
        subprocess.run(["pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop"]
                       if not self.user else
                       ["runuser", "-u", self.user, "--", "pg_ctl", "-D",
                        str(self.folder / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


# Waits logged before the database comes back: 0.5, 0.5 and 1 s done, the 2 s one begun.
OUTAGE_WAITS = 4


def test_postgres_outage_is_waited_out(redis_url, dataset, tmp_path):
    require(bool(shutil.which("initdb") and shutil.which("pg_ctl")),
            "initdb/pg_ctl not found: cannot start a private PostgreSQL")
    pg = PrivatePostgres()
    pg.start()
    stack = Stack(redis_url, pg.url, tmp_path)
    try:
        truth = copy_sample(dataset, tmp_path / "photos", per_digit=6)
        stack.start_worker(concurrency=1, faults=True, SIGNDIGITS_TEST_HOLD_BATCHES="1")
        holds = BatchHolds(stack.broker_url)
        job_id = stack.submit(tmp_path / "photos", "--batch-size", "6")
        holds.wait_held(job_id, 1)  # batch 0 stored, 1 claimed, 2-9 queued
        pg.stop()
        stopped = time.monotonic()
        # One release for the pass that meets the outage at its store, one for the pass
        # that starts over in place once the database is back.
        holds.release(job_id, 1, times=2)
        # Waited out with backoff (0.5, 0.5, 1, 2 s...), unacknowledged, not given up.
        _wait_for_log(stack.worker, "database unavailable", times=OUTAGE_WAITS)
        pg.start()
        restarted = time.monotonic()
        stack.wait_for(job_id, timeout=180)
        rows = stack.rows(job_id)
        figures = account(rows, list(truth))
        figures["outage s"] = round(restarted - stopped, 1)
        figures["finished after restart s"] = round(time.monotonic() - restarted, 1)
        record(f"PostgreSQL stopped mid-batch for {OUTAGE_WAITS} waits", figures)
        assert figures["rows"] == 60 and figures["missing"] == 0 and figures["duplicates"] == 0
        assert all(r.status == "done" for r in rows)
    finally:
        stack.stop()
        pg.remove()


def _wait_for_log(worker, text: str, *, times: int, timeout: float = 90) -> None:
    wait_until(lambda: worker.log.read_text(errors="replace").count(text) >= times,
               timeout=timeout, message=f"{text!r} logged {times} times",
               details=worker.log_tail)


def test_a_store_failing_for_a_while_is_waited_out_without_using_up_tries(redis_url, dataset,
                                                                          tmp_path):
    """The claim worked, then the store failed (PostgreSQL's disk full, SQLSTATE 53100): each
    start over in place counted one more attempt, and at max_attempts the batch's images
    became error rows ("no try finished"), 20 s into one delivery."""
    import psycopg

    from signdigits.db.batches import batch_attempts
    from tests.conftest import fresh_postgres_schema

    with fresh_postgres_schema() as url:
        stack = Stack(redis_url, url, tmp_path, max_attempts=2)
        plain = url.replace("+psycopg", "")
        try:
            truth = copy_sample(dataset, tmp_path / "photos", per_digit=1)
            assert stack.cli("db", "upgrade").returncode == 0
            with psycopg.connect(plain, autocommit=True) as connection:
                connection.execute(
                    "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
                    "RAISE EXCEPTION 'No space left on device' USING ERRCODE = '53100'; "
                    "END$$; CREATE TRIGGER full_disk BEFORE UPDATE ON images FOR EACH ROW "
                    "EXECUTE FUNCTION full_disk()")
            stack.start_worker(concurrency=1)
            job_id = stack.submit(tmp_path / "photos", "--batch-size", "10")
            _wait_for_log(stack.worker, "database unavailable", times=4)  # > max_attempts
            with psycopg.connect(plain, autocommit=True) as connection:
                connection.execute("DROP TRIGGER full_disk ON images")
            stack.wait_for(job_id, timeout=120)
            rows = stack.rows(job_id)
            figures = account(rows, list(truth))
            record("store failing for a while (disk full)", figures)
            assert all(r.status == "done" for r in rows), _not_done(rows)
            assert figures["missing"] == 0 and figures["duplicates"] == 0
            with stack.sessions()() as session:
                assert batch_attempts(session, job_id=job_id, batch=0) == 1
        finally:
            stack.stop()


def _wait_until_no_message_is_left(stack: Stack, timeout: float = 60) -> None:
    """Until neither the broker nor the worker holds a message of this stack's queue.

    Queued (the queue's list), delivered but unacknowledged (kombu's ``unacked`` hash,
    what the visibility timeout restores), or held by the worker (running, reserved,
    waiting for a retry's countdown): with none of these left, no delivery can follow.
    """
    import redis

    from signdigits.broker.app import QUEUE

    client = redis.Redis.from_url(stack.broker_url)
    inspect = stack.app().control.inspect(destination=[stack.worker.name], timeout=2)

    def none_left() -> bool:
        held = [inspect.active(), inspect.reserved(), inspect.scheduled()]
        in_worker = sum(len(reply.get(stack.worker.name, [])) for reply in held if reply)
        return (all(held) and not in_worker and not client.llen(QUEUE)
                and not client.hlen("unacked"))

    wait_until(none_left, timeout=timeout, message="no message of the queue left held")


def test_poison_batch_stops_after_bounded_attempts(counting_stack, dataset, tmp_path):
    stack = counting_stack
    truth = copy_sample(dataset, tmp_path / "photos", per_digit=3)
    stack.start_worker(concurrency=1, faults=True, SIGNDIGITS_TEST_POISON_BATCHES="1")
    with stack.task_events() as events:
        job_id = stack.submit(tmp_path / "photos", "--batch-size", "10")
        stack.wait_for(job_id, timeout=120)
        events.wait_for(job_id, 1, until=lambda seen: "succeeded" in seen)
        _wait_until_no_message_is_left(stack)
        deliveries = events.of(job_id, 1).count("received")
    # Three tries, each a delivery; the third gave up and was acknowledged: no fourth.
    assert deliveries == 3, (events.of(job_id, 1), stack.worker.log.read_text()[-6000:])
    rows = stack.rows(job_id)
    poisoned = [r for r in rows if r.batch == 1]
    assert len(poisoned) == 10
    assert all(r.status == "error" and "gave up after 3 attempts" in r.error for r in poisoned)
    assert all("poisoned batch 1" in r.error for r in poisoned)
    assert {r.attempts for r in poisoned} == {3}
    assert all(r.status == "done" for r in rows if r.batch != 1)
    figures = account(rows, list(truth))
    figures["attempts"] = 3
    figures["deliveries"] = deliveries
    record("poison batch (fails every time, max 3 attempts)", figures)
    assert figures["missing"] == 0 and figures["duplicates"] == 0
    assert "done with errors" in stack.cli("status", job_id).stdout


def test_batch_that_kills_its_worker_every_time_is_given_up(
    counting_stack, dataset, tmp_path
):
    stack = counting_stack
    truth = copy_sample(dataset, tmp_path / "photos", per_digit=3)
    worker = stack.start_worker(concurrency=1, faults=True, SIGNDIGITS_TEST_KILL_BATCHES="1")
    with stack.task_events() as events:
        job_id = stack.submit(tmp_path / "photos", "--batch-size", "10")
        stack.wait_for(job_id, timeout=300)
        events.wait_for(job_id, 1, until=lambda seen: "succeeded" in seen)
        deliveries = events.of(job_id, 1).count("received")
    rows = stack.rows(job_id)
    doomed = [r for r in rows if r.batch == 1]
    assert len(doomed) == 10
    assert all(r.status == "error" and "gave up after 3 attempts" in r.error
               and "died" in r.error for r in doomed), {r.error for r in doomed}
    assert {r.attempts for r in doomed} == {3}  # the tries made, as for a batch that raises
    assert all(r.status == "done" for r in rows if r.batch != 1), _not_done(rows)
    kills = worker.log.read_text(errors="replace").count("exited with 'signal 9 (SIGKILL)'")
    assert kills == 3  # exactly max_attempts tries, each ended by the process's death
    assert deliveries == 4, events.of(job_id, 1)  # three tries, then the give-up delivery
    figures = account(rows, list(truth))
    figures.update({"child deaths": kills, "deliveries": deliveries})
    record("batch kills its worker process on every try (max 3 attempts)", figures)
    assert figures["rows"] == 30 and figures["missing"] == 0 and figures["duplicates"] == 0
    assert "done with errors" in stack.cli("status", job_id).stdout


def test_cancel_skips_batches_not_started(sqlite_stack, dataset, tmp_path):
    stack = sqlite_stack
    copy_sample(dataset, tmp_path / "photos", per_digit=5)
    stack.start_worker(concurrency=1, faults=True, SIGNDIGITS_TEST_HOLD_BATCHES="1")
    holds = BatchHolds(stack.broker_url)
    with stack.task_events() as events:
        job_id = stack.submit(tmp_path / "photos", "--batch-size", "5")
        holds.wait_held(job_id, 1)  # batch 0 stored, 1 claimed and in flight, 2-9 queued
        cancelled = stack.cli("cancel", job_id)
        assert cancelled.returncode == 0, cancelled.stderr
        # From the cancel's commit on, no row can change: the batch in flight stores only
        # over pending rows, and the batches after it are skipped. So the counts read now
        # are final; every batch's task ends (done, in flight or skipped) to prove it.
        at_cancel = stack.counts(job_id)
        holds.release(job_id, 1)
        for batch in range(10):
            events.wait_for(job_id, batch, until=lambda seen: "succeeded" in seen)
    counts = stack.counts(job_id)
    assert counts == at_cancel == {"done": 5, "cancelled": 45}, counts
    status = stack.cli("status", job_id).stdout
    # What was read of all, and what the cancel left: not "50/50", as if all were read.
    assert "cancelled" in status and "5/50, 45 cancelled" in " ".join(status.split()), status
    # Nothing else is disturbed: the next job runs to the end on the same worker.
    other = copy_sample(dataset, tmp_path / "next", per_digit=1, seed=3)
    next_job = stack.submit(tmp_path / "next")
    stack.wait_for(next_job, timeout=120)
    assert stack.counts(next_job) == {"done": len(other)}
    record("cancel mid-job", {"submitted": 50, "done": counts["done"],
                              "cancelled": counts["cancelled"], "pending": 0})
    assert stack.counts(job_id) == counts  # later batches of the cancelled job stayed skipped
