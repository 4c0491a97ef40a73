"""A job's webhook after the fact, against real receivers, workers and databases: sent
again (to a new URL) once it failed or was delivered, and stopped while it retries."""

from __future__ import annotations

import pytest

from tests.conftest import Stack, copy_sample
from tests.test_webhooks import WEBHOOK_SETTINGS, _job, _settled
from tests.webhook_receiver import SECRET, Receiver


@pytest.fixture
def stack(redis_url, database_url, tmp_path):
    # A 2 s deadline: a receiver that is down is given up after three attempts.
    stack = Stack(redis_url, database_url, tmp_path, **WEBHOOK_SETTINGS, webhook_deadline="2")
    yield stack
    for worker in stack.workers:
        worker.stop()


def test_a_failed_webhook_is_sent_again_to_a_new_url_then_again(stack, dataset, tmp_path):
    photos = tmp_path / "photos"
    copy_sample(dataset, photos, 1)
    with Receiver(fail_first=1_000) as down, Receiver() as up:
        stack.start_worker(concurrency=1)
        job_id = stack.submit(photos, "--webhook", down.url)
        failed = _settled(stack, job_id)
        assert failed.webhook_state == "failed", failed.webhook_last_status
        tries = failed.webhook_attempts
        sent = stack.cli("webhook", "send", job_id[:8], "--url", up.url)
        assert sent.returncode == 0, sent.stderr
        said = sent.stdout + sent.stderr
        assert "queued for the workers" in said and "token" not in said, said
        (event,) = up.wait_for(1)
        job = _settled(stack, job_id)
        assert (job.webhook_state, job.webhook_last_status) == ("delivered", "200")
        # Attempts are never reset: /metrics counts them, and a counter never falls.
        assert job.webhook_attempts == tries + 1
        assert event.signed and event.webhook_id == f"msg_{job_id}"
        assert event.event["data"]["id"] == job_id
        # Delivered, and sent again on request (the receiver lost it): the same event.
        again = stack.cli("webhook", "send", job_id)
        assert again.returncode == 0, again.stderr
        second = up.wait_for(2)[1]
        assert second.webhook_id == event.webhook_id and second.event == event.event
        assert _settled(stack, job_id).webhook_attempts == tries + 2
    assert len(down.received) == tries  # the old address was not called again


def test_a_retrying_webhook_is_stopped(redis_url, database_url, tmp_path, dataset):
    from datetime import timedelta

    from signdigits.db.webhooks import take_attempt

    stack = Stack(redis_url, database_url, tmp_path, **WEBHOOK_SETTINGS)  # retried a day
    photos = tmp_path / "photos"
    copy_sample(dataset, photos, 1)
    try:
        with Receiver(fail_first=1_000) as down:
            stack.start_worker(concurrency=1)
            job_id = stack.submit(photos, "--webhook", down.url)
            down.wait_for(2)  # failed once, retrying
            stopped = stack.cli("webhook", "stop", job_id)
            assert stopped.returncode == 0, stopped.stderr
            assert "webhook stopped (it was sending)" in stopped.stdout + stopped.stderr
            job = _job(stack, job_id)
            assert (job.webhook_state, job.webhook_last_status) == (
                "failed", "stopped by an operator")
            with stack.sessions().begin() as session:  # the next attempt finds it settled
                assert take_attempt(session, job_id=job_id, attempts=job.webhook_attempts,
                                    lease=timedelta(seconds=15)) is None
    finally:
        for worker in stack.workers:
            worker.stop()
    status = stack.cli("status", job_id)
    assert "stopped by an operator after" in status.stdout, status.stdout
    twice = stack.cli("webhook", "stop", job_id)
    lines = (twice.stdout + twice.stderr).strip().splitlines()
    assert twice.returncode == 1 and len(lines) == 1 and "nothing to stop" in lines[0], lines


def test_the_api_sends_and_stops_a_webhook_and_refuses_in_one_line(redis_url, sqlite_url,
                                                                   tmp_path, dataset):
    from signdigits.config.settings import Settings
    from tests.web_server import serving

    photos = tmp_path / "photos"
    copy_sample(dataset, photos, 1)
    settings = Settings(broker_url=redis_url, database_url=sqlite_url, webhook_secret=SECRET,
                        webhook_allowed_hosts=["127.0.0.1"])
    with serving(settings) as client, Receiver() as receiver:
        job = client.post("/api/jobs", json={"folder": str(photos)}).json()  # no worker: runs
        path = f"/api/jobs/{job['id']}/webhook"
        answer = client.post(path)
        assert answer.status_code == 409 and "has no webhook" in answer.json()["detail"]
        for body, status, says in [
            ({"url": "gopher://x"}, 422, "http:// or https://"),
            ({"url": "http://169.254.169.254/"}, 400, "not in SIGNDIGITS_WEBHOOK_ALLOWED_HOSTS"),
            ([1], 422, "send a JSON object"),
        ]:
            answer = client.post(path, json=body)
            assert answer.status_code == status and says in answer.json()["detail"], answer.text
        # Running: the URL is taken, sent when the job ends.
        answer = client.post(path, json={"url": receiver.url})
        assert answer.status_code == 200, answer.text
        assert answer.json()["webhook"]["state"] == "pending"
        answer = client.delete(path)
        assert answer.status_code == 200, answer.text
        assert answer.json()["webhook"]["line"].endswith("stopped by an operator after 0 "
                                                         "attempts")
        answer = client.delete(path)
        assert answer.status_code == 409 and "nothing to stop" in answer.json()["detail"]
        # Stopped while the job runs, then wanted again: sent when the job ends.
        answer = client.post(path, json={})
        assert answer.status_code == 200 and answer.json()["webhook"]["state"] == "pending"
        assert client.post("/api/jobs/ffffffff/webhook").status_code == 404


def test_an_attempt_of_the_old_claim_never_settles_a_webhook_sent_again(stack, dataset,
                                                                        tmp_path):
    """An attempt in flight when an operator sends the webhook again (to a new URL) ends
    after it: its answer, and its deadline (the old claim's), must not settle the new
    claim, or the new URL is never called while `status` says failed (or delivered)."""
    from datetime import timedelta

    from signdigits.db.webhooks import record_attempt, send_again, take_attempt

    photos = tmp_path / "photos"
    copy_sample(dataset, photos, 1)
    job_id = stack.submit(photos, "--webhook", "http://127.0.0.1:9/old")  # no worker
    assert stack.cli("cancel", job_id).returncode == 0  # ended: its webhook claimed
    sessions, lease = stack.sessions(), timedelta(seconds=15)
    with sessions.begin() as session:
        attempts = _job(stack, job_id).webhook_attempts
        old = take_attempt(session, job_id=job_id, attempts=attempts, lease=lease)
        assert old is not None  # the old claim's attempt, now in flight
    with sessions.begin() as session:
        assert send_again(session, job_id=job_id, url="http://127.0.0.1:9/new") == attempts + 1
    with sessions.begin() as session:  # the old attempt times out past its deadline
        assert not record_attempt(session, job_id=job_id, claimed_at=old.webhook_claimed_at,
                                  status="timeout", delivered=False, give_up=True,
                                  next_at=None)
    job = _job(stack, job_id)
    assert (job.webhook_state, job.webhook_url, job.webhook_last_status) == (
        "sending", "http://127.0.0.1:9/new", None)
    with sessions.begin() as session:  # the task the send queued goes on
        assert take_attempt(session, job_id=job_id, attempts=attempts + 1, lease=lease)
