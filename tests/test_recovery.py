"""Recovery without an operator: the workers' reconciler (worker/reconciler.py) re-sends
the batches the broker lost and gives back a dead worker's, with no `resume` run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis
from sqlalchemy import func, select

from signdigits.broker.app import QUEUE
from signdigits.broker.liveness import passes
from signdigits.broker.sending import batch_of
from signdigits.db.models import Batch, Image
from signdigits.db.session import session_factory
from signdigits.stack.valkey import RedisServer, free_port
from tests.conftest import (
    REPO,
    Stack,
    account,
    copy_sample,
    make_env,
    run_cli,
    start_valkey,
)
from tests.figures import record
from tests.holds import BatchHolds
from tests.waiting import wait_until


def _not_done(rows) -> list:
    return [(r.batch, r.status, r.error) for r in rows if r.status != "done"]


@pytest.fixture
def patient_stack(redis_url, tmp_path):
    """Neither the visibility timeout nor the stall period runs out during a test: only the
    heartbeats tell whether a worker still holds its batch."""
    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'results.db'}", tmp_path,
                  visibility_timeout=3600, stall_seconds=3600)
    yield stack
    stack.stop()


def _batch_zero_held(stack: Stack, dataset, tmp_path, *, per_digit: int, batch_size: int):
    """(truth, the worker, job id, holds): a job submitted, its batch 0 held by the worker."""
    truth = copy_sample(dataset, tmp_path / "photos", per_digit=per_digit)
    worker = stack.start_worker(concurrency=1, faults=True, SIGNDIGITS_TEST_HOLD_BATCHES="0")
    holds = BatchHolds(stack.broker_url)
    job_id = stack.submit(tmp_path / "photos", "--batch-size", str(batch_size))
    holds.wait_held(job_id, 0)
    return truth, worker, job_id, holds


def test_whole_worker_killed_comes_back_in_seconds_despite_an_hour_of_visibility(
        patient_stack, dataset, tmp_path):
    """SIGKILL of a worker and its pool, with SIGNDIGITS_VISIBILITY_TIMEOUT=3600 and a
    stall period longer than the test: only the heartbeat restore can bring its batch back."""
    stack = patient_stack
    # Never released: its worker dies.
    truth, doomed, job_id, _ = _batch_zero_held(stack, dataset, tmp_path, per_digit=4,
                                                batch_size=8)
    os.killpg(doomed.process.pid, signal.SIGKILL)  # the worker and its children
    doomed.process.wait()
    killed_at = time.monotonic()
    live = stack.start_worker(concurrency=1)
    stack.wait_for(job_id, timeout=60)
    recovered = round(time.monotonic() - killed_at, 1)
    rows = stack.rows(job_id)
    figures = account(rows, list(truth))
    figures["recovered after s"] = recovered
    record("whole worker SIGKILLed mid-batch (visibility timeout 3600 s)", figures)
    assert figures["rows"] == 40 and figures["missing"] == 0 and figures["duplicates"] == 0
    assert all(r.status == "done" for r in rows), _not_done(rows)
    assert f"gave back batch 0 of job {job_id}" in live.log.read_text()


def test_a_broker_restarted_without_persistence_is_refilled_by_the_workers(tmp_path, dataset):
    port = free_port()
    broker = RedisServer(port=port)
    broker.start()
    stack = Stack(f"redis://127.0.0.1:{port}/0", f"sqlite:///{tmp_path / 'r.db'}", tmp_path,
                  stall_seconds=3)
    try:
        truth = copy_sample(dataset, tmp_path / "photos", per_digit=6)
        worker = stack.start_worker(concurrency=1, faults=True,
                                    SIGNDIGITS_TEST_HOLD_BATCHES="1")
        holds = BatchHolds(stack.broker_url)
        job_id = stack.submit(tmp_path / "photos", "--batch-size", "6")
        holds.wait_held(job_id, 1)  # batch 0 stored, 1 in flight, 2-9 queued
        broker.stop()  # no persistence: every queued message is gone
        broker = RedisServer(port=port)
        broker.start()
        restarted = time.monotonic()
        holds.release(job_id, 1)  # on the new broker, where the held batch asks again
        stack.wait_for(job_id, timeout=60)  # no `resume`: the workers send them again
        rows = stack.rows(job_id)
        figures = account(rows, list(truth))
        figures["finished after the restart s"] = round(time.monotonic() - restarted, 1)
        log = worker.log.read_text()
        figures["batches re-sent"] = log.count("re-sent batch")  # each once: below
        record("broker restarted without persistence, no operator (stall 3 s)", figures)
        assert figures["rows"] == 60 and figures["missing"] == 0 and figures["duplicates"] == 0
        assert all(r.status == "done" for r in rows), _not_done(rows)
        assert stack.summary(job_id).state == "done"
        # The 8 lost batches, each once. (Batch 1, in flight, lost its unacknowledged entry
        # too: on a slow machine it may be re-sent as well, once, a harmless duplicate.)
        resent = Counter(int(line.split("re-sent batch ")[1].split()[0])
                         for line in log.splitlines() if "re-sent batch" in line)
        assert set(range(2, 10)) <= set(resent) <= set(range(1, 10)), resent
        assert set(resent.values()) == {1}, resent
    finally:
        stack.stop()
        broker.stop()


def test_the_reconciler_resends_a_lost_batch_once_per_stall_period(redis_url, dataset,
                                                                   tmp_path):
    """Never a flood: while a re-sent message waits in the queue it is not sent again,
    however many passes run; lost again, it is sent again only a stall period later."""
    stall = 3
    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'results.db'}", tmp_path,
                  stall_seconds=stall, visibility_timeout=3600)
    client = redis.Redis.from_url(stack.broker_url)
    try:
        copy_sample(dataset, tmp_path / "photos", per_digit=3)  # 30 images, batches of 6
        stack.start_worker(concurrency=1, faults=True, SIGNDIGITS_TEST_HOLD_BATCHES="0")
        holds = BatchHolds(stack.broker_url)
        job_id = stack.submit(tmp_path / "photos", "--batch-size", "6")
        holds.wait_held(job_id, 0)  # the only worker process is busy: 1-4 stay queued

        def queued() -> list[int]:
            return sorted(b[1] for raw in client.lrange(QUEUE, 0, -1) if (b := batch_of(raw)))

        def resent_at() -> dict[int, object]:
            with stack.sessions()() as session:
                return dict(session.execute(select(Batch.batch, Batch.resent_at)
                                            .where(Batch.job_id == job_id)).all())

        assert queued() == [1, 2, 3, 4]
        sends: list[dict] = []
        for _ in range(2):
            before = resent_at()
            client.delete(QUEUE)  # the broker loses every queued message

            def resent(before=before) -> dict | None:
                now = resent_at()  # marked right after each send: wait for all four
                fresh = all(now[b] is not None and now[b] != before[b] for b in (1, 2, 3, 4))
                return now if fresh and queued() == [1, 2, 3, 4] else None

            sends.append(wait_until(resent, timeout=30, message="the lost batches re-sent",
                                    details=lambda: f"{queued()} {resent_at()}"))
            # Passes go on (3 of 1.5 s: over a stall period); none sends a batch again
            # while its message waits in the queue.
            seen = passes(client)
            wait_until(lambda s=seen: passes(client) >= s + 3, timeout=60,
                       message="more reconciler passes")
            assert queued() == [1, 2, 3, 4]
            assert resent_at() == sends[-1]
        first, second = sends
        assert first[0] is None and second[0] is None  # held by the live worker: never
        for batch in (1, 2, 3, 4):
            assert (second[batch] - first[batch]).total_seconds() >= stall
        record("reconciler under repeated loss (stall 3 s)", {
            "batches lost": 4, "losses": 2, "messages queued per batch": 1})
        holds.release(job_id, 0)
        stack.wait_for(job_id, timeout=60)
        assert stack.counts(job_id) == {"done": 30}
    finally:
        stack.stop()


def _job_left_by_a_dead_embedded_stack(tmp_path, dataset) -> tuple[str, str]:
    """A job whose broker is gone with every message, as a killed `run` or `serve`
    leaves it: submitted to a Valkey that nobody served, then stopped. (url, job id)"""
    copy_sample(dataset, tmp_path / "photos", per_digit=2)  # 20 images
    database = f"sqlite:///{tmp_path / 'results.db'}"
    valkey = start_valkey()
    try:
        stack = Stack(valkey.url, database, tmp_path)
        job_id = stack.submit(tmp_path / "photos", "--batch-size", "5")
    finally:
        valkey.stop()
    assert stack.counts(job_id) == {"pending": 20}
    return database, job_id


def _counts(database: str, job_id: str) -> dict[str, int]:
    with session_factory(database)() as session:
        return dict(session.execute(select(Image.status, func.count())
                                    .where(Image.job_id == job_id)
                                    .group_by(Image.status)).all())


def test_resume_without_a_broker_starts_the_embedded_stack_and_finishes(tmp_path, dataset):
    """`run` prints "`signdigits resume JOB` continues it": without a broker configured,
    resume used to stop at "SIGNDIGITS_BROKER_URL is not set"."""
    database, job_id = _job_left_by_a_dead_embedded_stack(tmp_path, dataset)
    started = time.monotonic()
    resumed = run_cli("resume", job_id, env=make_env(database_url=database, concurrency="1"),
                      cwd=tmp_path, timeout=180)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "enqueued 4 batches" in resumed.stderr, resumed.stderr
    assert _counts(database, job_id) == {"done": 20}
    record("`resume` of an embedded stack's job, no broker configured",
           {"rows done": 20, "exit": 0, "seconds": round(time.monotonic() - started, 1)})
    again = run_cli("resume", job_id, env=make_env(database_url=database, concurrency="1"),
                    cwd=tmp_path, timeout=60)  # it had started the whole stack again
    assert again.returncode == 0 and again.stderr.strip() == (
        f"job {job_id} is done: nothing to resume"), again.stdout + again.stderr


def test_serve_started_again_continues_a_job_an_earlier_stack_left(tmp_path, dataset):
    """Restarting `serve` resumed nothing: the job stayed "running (stalled)" for good."""
    database, job_id = _job_left_by_a_dead_embedded_stack(tmp_path, dataset)
    env = make_env(database_url=database, concurrency="1", stall_seconds="2")
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", str(REPO))
    started = time.monotonic()
    serve = subprocess.Popen([sys.executable, "-m", "signdigits", "serve", "--port",
                              str(free_port())], cwd=tmp_path, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        def done() -> bool:
            assert serve.poll() is None, "serve exited"
            return _counts(database, job_id) == {"done": 20}

        wait_until(done, timeout=120, interval=0.3,
                   message="the earlier job to finish under the new serve")
        record("`serve` started again, a job an earlier embedded stack left (stall 2 s)",
               {"rows done": 20, "finished after the start s":
                round(time.monotonic() - started, 1)})
    finally:
        serve.send_signal(signal.SIGINT)
        output = serve.communicate(timeout=60)[0]
    assert serve.returncode == 0, output


def test_a_worker_stopping_warmly_beats_until_its_batch_is_done(patient_stack, dataset,
                                                                  tmp_path):
    """SIGTERM is Celery's warm shutdown: the reconciler's step is stopped before the pool
    finishes its batches. The heartbeat stopped with it, so a batch still read 15 s after
    the SIGTERM (64 photos with no hand take minutes) was given back to another worker
    while this one read it. It beats now until the process ends."""
    from signdigits.broker.liveness import HEARTBEAT_SECONDS, workers_online

    stack = patient_stack
    truth, stopping, job_id, holds = _batch_zero_held(stack, dataset, tmp_path, per_digit=1,
                                                      batch_size=10)
    os.kill(stopping.process.pid, signal.SIGTERM)
    sent = time.time()

    def beat_after_the_stop():
        beat = workers_online(stack.app()).get(stopping.name)
        return beat if beat and beat["at"] > sent + HEARTBEAT_SECONDS else None

    beat = wait_until(beat_after_the_stop, timeout=30, interval=0.5,
                      message="a heartbeat a beat after the SIGTERM", details=stopping.log_tail)
    assert [job_id, 0] in beat["held"].values()  # still listed as this worker's
    holds.release(job_id, 0)
    assert stopping.process.wait(60) == 0  # warm: the batch finished, then it left
    rows = stack.rows(job_id)
    assert account(rows, list(truth))["rows"] == 10
    assert all(r.status == "done" and r.attempts == 1 for r in rows), _not_done(rows)


def test_a_batch_out_of_sight_for_a_moment_is_not_sent_again(redis_url, dataset, tmp_path,
                                                             monkeypatch):
    """kombu's window: a worker's BRPOP has taken the message and its write to ``unacked``
    has not landed, so one look finds it nowhere. Lost is what two looks both miss: the
    batch the worker took is not sent again, the batch the broker lost is."""
    from signdigits.config.settings import get_settings
    from signdigits.db.recovery import stalled_batches
    from signdigits.worker import reconciler

    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'results.db'}", tmp_path,
                  stall_seconds=1, visibility_timeout=3600)
    client = redis.Redis.from_url(stack.broker_url)
    copy_sample(dataset, tmp_path / "photos", per_digit=1)  # 10 images, no worker
    job_id = stack.submit(tmp_path / "photos", "--batch-size", "5")

    def stalled() -> bool:
        with stack.sessions()() as session:
            return [job.batches for job in stalled_batches(session, stall_seconds=1)] == [[0, 1]]

    wait_until(stalled, timeout=30, message="both batches due for a re-send")
    messages = {batch_of(raw)[1]: raw for raw in client.lrange(QUEUE, 0, -1)}
    client.delete(QUEUE)  # batch 0 taken by a worker's BRPOP, batch 1 lost
    looks = []

    def held_batches(app, wanted):
        found = real_held_batches(app, wanted)
        if not looks:  # the worker's write lands after the first look
            client.hset("unacked", "tag-0", f'[{messages[0].decode()}, "", "{QUEUE}"]')
        looks.append(found)
        return found

    real_held_batches = reconciler.held_batches
    monkeypatch.setattr(reconciler, "held_batches", held_batches)
    for name, value in stack.env.items():
        if name.startswith("SIGNDIGITS_"):
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        reconciler.reconcile(stack.app())
    finally:
        get_settings.cache_clear()
    assert looks == [set(), {(job_id, 0)}]
    assert [batch_of(raw)[1] for raw in client.lrange(QUEUE, 0, -1)] == [1]
    with stack.sessions()() as session:
        resent = dict(session.execute(select(Batch.batch, Batch.resent_at)
                                      .where(Batch.job_id == job_id)).all())
    assert resent[0] is None and resent[1] is not None
