"""A job's webhook against a real receiver, real workers and a real database: signed,
retried, one event per job (or the same ``webhook-id`` again), refused hosts refused."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.conftest import Stack, copy_sample, run_cli
from tests.figures import record
from tests.waiting import wait_until
from tests.webhook_receiver import SECRET, Receiver

WEBHOOK_SETTINGS = {"webhook_secret": SECRET, "webhook_allowed_hosts": "127.0.0.1",
                    "stall_seconds": "2"}


@pytest.fixture
def stack(redis_url, database_url, tmp_path):
    stack = Stack(redis_url, database_url, tmp_path, **WEBHOOK_SETTINGS)
    yield stack
    for worker in stack.workers:
        worker.stop()


def _job(stack: Stack, job_id: str):
    from signdigits.db.models import Job

    with stack.sessions()() as session:
        return session.get(Job, job_id)


def _settled(stack: Stack, job_id: str):
    return wait_until(lambda: (job := _job(stack, job_id)).webhook_state in (
        "delivered", "failed") and job, timeout=60, message=f"job {job_id}'s webhook settled")


def test_a_job_that_ends_posts_one_signed_summary(stack, dataset, tmp_path):
    """Submitted with --webhook, the job's end is POSTed once, signed as the Standard
    Webhooks specification says, with its summary; `status` and the record say so."""
    from signdigits.db.webhooks import claim_webhook

    photos = tmp_path / "photos"
    copy_sample(dataset, photos, 1)
    with Receiver() as receiver:
        stack.start_worker(concurrency=2)
        job_id = stack.submit(photos, "--webhook", receiver.url, "--batch-size", "2")
        (event,) = receiver.wait_for(1)
        job = _settled(stack, job_id)
    assert event.signed and event.webhook_id == f"msg_{job_id}"
    assert event.event["type"] == "job.ended"
    data = event.event["data"]
    assert (data["id"], data["state"], data["total_images"], data["pending"]) == (
        job_id, "done", 10, 0)
    assert data["done"] + data["errors"] == 10
    # The models that read it: one here, with the job's threshold.
    assert data["models"] == [{"version": data["model_version"], "images": data["done"],
                               "threshold": data["threshold"]}]
    assert (job.webhook_state, job.webhook_attempts, job.webhook_last_status) == (
        "delivered", 1, "200")
    with stack.sessions().begin() as session:  # claimed once: nobody may claim it again
        assert not claim_webhook(session, job_id=job_id)
    status = stack.cli("status", job_id)
    assert status.returncode == 0, status.stderr
    line = next(x for x in status.stdout.splitlines() if "webhook" in x)
    assert "delivered" in line and "(1 attempts, last answer 200)" in line
    assert "token" not in status.stdout  # the URL's query may hold a secret


def test_a_failing_receiver_is_retried_with_backoff_until_it_accepts(stack, dataset,
                                                                     tmp_path):
    photos = tmp_path / "photos"
    copy_sample(dataset, photos, 1)
    with Receiver(fail_first=2) as receiver:
        stack.start_worker(concurrency=1)
        job_id = stack.submit(photos, "--webhook", receiver.url)
        received = receiver.wait_for(3)
        job = _settled(stack, job_id)
    assert [r.answered for r in received] == [503, 503, 200]
    assert {r.webhook_id for r in received} == {f"msg_{job_id}"}
    assert all(r.signed for r in received)
    gaps = [b.timestamp - a.timestamp for a, b in zip(received, received[1:], strict=False)]
    assert (job.webhook_state, job.webhook_attempts, job.webhook_last_status) == (
        "delivered", 3, "200")
    record("webhook retries", {"attempts until a 2xx": 3, "seconds between attempts": gaps})


def test_a_worker_killed_mid_delivery_sends_the_same_webhook_id_again(stack, dataset,
                                                                       tmp_path):
    """The worker posting the event dies before the answer: a restarted worker posts it
    again (the reconciler re-sends the lost attempt), with the same webhook-id and body."""
    photos = tmp_path / "photos"
    copy_sample(dataset, photos, 1)
    with Receiver(hold=True) as receiver:
        worker = stack.start_worker(concurrency=1)
        job_id = stack.submit(photos, "--webhook", receiver.url)
        receiver.wait_for(1)
        os.killpg(worker.process.pid, signal.SIGKILL)  # the whole worker, mid-POST
        killed = time.monotonic()
        worker.process.wait(30)
        receiver.release()
        stack.start_worker(concurrency=1)
        received = receiver.wait_for(2, timeout=90)
        again = time.monotonic() - killed
        job = _settled(stack, job_id)
    assert {r.webhook_id for r in received} == {f"msg_{job_id}"}
    assert len({repr(r.event) for r in received}) == 1 and all(r.signed for r in received)
    assert job.webhook_state == "delivered"
    record("webhook, worker killed mid-POST", {
        "POSTs": len(received), "webhook-ids": len({r.webhook_id for r in received}),
        "seconds from the kill to the POST again": round(again, 1)})


def test_a_receiver_slow_to_answer_holds_no_worker_process(stack, dataset, tmp_path):
    """A one-process worker had waited on each POST to a slow receiver (up to 10 s an
    attempt), every other job's batches behind it. The POST is now made from a thread: a
    second job is read while the first one's POST is still unanswered."""
    copy_sample(dataset, tmp_path / "first", 1, seed=3)
    copy_sample(dataset, tmp_path / "second", 1, seed=4)
    with Receiver(hold=True) as receiver:
        stack.start_worker(concurrency=1)
        first = stack.submit(tmp_path / "first", "--webhook", receiver.url)
        receiver.wait_for(1)  # its POST is open, unanswered
        second = stack.submit(tmp_path / "second")
        stack.wait_for(second, timeout=60)
        held = _job(stack, first)
        # Still the first attempt, unanswered: nothing recorded, no second POST.
        assert (held.webhook_state, held.webhook_last_status) == ("sending", None)
        assert len(receiver.received) == 1
        receiver.release()
        job = _settled(stack, first)
    assert (job.webhook_state, job.webhook_attempts, job.webhook_last_status) == (
        "delivered", 1, "200")


def test_cancel_ends_the_job_and_sends_its_webhook(stack, dataset, tmp_path):
    """No worker yet: `cancel` ends the job and queues its webhook; the first worker to
    start posts it, state cancelled."""
    photos = tmp_path / "photos"
    copy_sample(dataset, photos, 1)
    with Receiver() as receiver:
        job_id = stack.submit(photos, "--webhook", receiver.url)
        cancelled = stack.cli("cancel", job_id)
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        stack.start_worker(concurrency=1)
        (event,) = receiver.wait_for(1)
    assert event.signed and event.event["data"]["state"] == "cancelled"
    assert event.event["data"]["cancelled"] == 10


def test_a_host_not_allowed_is_refused_in_one_line_at_submit(redis_url, sqlite_url, tmp_path,
                                                             dataset):
    from tests.conftest import make_env

    photos = tmp_path / "photos"
    copy_sample(dataset, photos, 1)
    env = make_env(broker_url=redis_url, database_url=sqlite_url, webhook_secret=SECRET)
    listed = {**env, "SIGNDIGITS_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}
    for url, reason, this_env in [
        ("http://169.254.169.254/latest/meta-data/", "link-local or cloud metadata", env),
        ("file:///etc/passwd", "only http:// and https://", env),
        ("https://hooks.example.org/x", "not in SIGNDIGITS_WEBHOOK_ALLOWED_HOSTS", listed),
    ]:
        result = run_cli("submit", str(photos), "--webhook", url, env=this_env, cwd=tmp_path)
        lines = (result.stdout + result.stderr).strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, lines
        assert lines[0].startswith("error: ") and reason in lines[0], lines
    status = run_cli("status", env=env, cwd=tmp_path)
    assert "no jobs yet" in status.stdout + status.stderr  # nothing was recorded


def test_the_api_refuses_a_disallowed_webhook_with_a_400(redis_url, sqlite_url, tmp_path,
                                                         dataset):
    from signdigits.config.settings import Settings
    from tests.web_server import serving

    photos = tmp_path / "photos"
    copy_sample(dataset, photos, 1)
    settings = Settings(broker_url=redis_url, database_url=sqlite_url,
                        webhook_secret=SECRET)
    with serving(settings) as client:
        answer = client.post("/api/jobs", json={"folder": str(photos),
                                                "webhook": "http://169.254.169.254/"})
        assert answer.status_code == 400, answer.text
        assert "link-local or cloud metadata" in answer.json()["detail"]
        answer = client.post("/api/jobs", json={"folder": str(photos), "webhook": "gopher://x"})
        assert answer.status_code == 422 and "http:// or https://" in answer.json()["detail"]


def test_run_says_it_waits_for_a_webhook_whose_receiver_is_down(dataset, tmp_path):
    """After its summary, `run` waited for a dead receiver through every retry (24 h by
    default) with nothing said when its stderr is not a terminal; Ctrl-C then said
    "pending images stay recorded" of a job whose every row was stored."""
    import signal
    import socket
    import subprocess
    import sys

    from tests.conftest import make_env
    from tests.waiting import wait_until

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    copy_sample(dataset, tmp_path / "photos", 1)
    env = {**make_env(webhook_secret=SECRET), "XDG_DATA_HOME": str(tmp_path),
           "SIGNDIGITS_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        run = subprocess.Popen([sys.executable, "-m", "signdigits", "run", str(tmp_path / "photos"),
                                "--workers", "1", "--webhook", dead], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=stderr, text=True)
        try:
            wait_until(lambda: "waiting for it (Ctrl-C stops waiting" in log.read_text()
                       or run.poll() is not None, timeout=180,
                       message="run's line on the webhook it waits for")
            assert run.poll() is None, log.read_text()[-2000:]
            run.send_signal(signal.SIGINT)
            run.wait(timeout=90)
        finally:
            if run.poll() is None:
                run.kill()
    said = log.read_text()
    assert run.returncode == 130, said[-2000:]
    assert "interrupted: stopping workers (the webhook stays to send)" in said, said[-2000:]
