"""`signdigits cancel` and `signdigits webhook send` with no broker configured (no
SIGNDIGITS_BROKER_URL: the embedded stack of a running `run` or `serve` is not reachable
from another process), run as real commands against a SQLite file: the database is
changed as with a broker, nothing is sent, and the line says who sends the webhook."""

from __future__ import annotations

from sqlalchemy import func, select

from signdigits.db.models import Image, ImageStatus, Job, as_utc, utcnow
from signdigits.db.session import session_factory
from tests.conftest import make_env, run_cli
from tests.test_cli_errors import database_with_jobs, one_line_error, sqlite_with_jobs

HOOK = "https://hooks.example.test/signdigits?token=secret-in-the-query"
SHOWN = "https://hooks.example.test/signdigits"  # no query: a token may be there


def _jobs(url: str) -> dict[str, Job]:
    with session_factory(url)() as session:
        return {job.name: job for job in session.scalars(select(Job))}


def test_cancel_without_a_broker_cancels_and_leaves_the_webhook_to_the_stack(tmp_path):
    now = utcnow()
    url = sqlite_with_jobs(tmp_path / "sd.db", {
        "name": "running", "submitted_at": now, "webhook_url": HOOK,
        "webhook_state": "pending"})
    job = _jobs(url)["running"]
    env = make_env(database_url=url)
    assert "SIGNDIGITS_BROKER_URL" not in env

    done = run_cli("cancel", job.id[:8], env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == f"job {job.id}: cancelled, 10 pending images skipped, of 10"
    with session_factory(url)() as session:
        statuses = dict(session.execute(select(Image.status, func.count()).where(
            Image.job_id == job.id).group_by(Image.status)).all())
    assert statuses == {ImageStatus.CANCELLED: 10}
    after = _jobs(url)["running"]
    assert after.cancelled_at is not None
    # No broker to send its task on: the webhook stays pending, unclaimed, for the running
    # stack's reconciler (which claims a pending webhook of an ended job).
    assert (after.webhook_state, after.webhook_attempts, after.webhook_claimed_at) == (
        "pending", None, None)

    # Cancelled again: said so, nothing changed (test_cancel_again_says_when_it_was).
    again = run_cli("cancel", job.id, env=env, cwd=tmp_path)
    assert again.returncode == 0 and "already cancelled at" in again.stderr, again.stderr
    assert _jobs(url)["running"].cancelled_at == after.cancelled_at


def test_cancel_again_says_when_it_was(database_url, tmp_path):
    """A job already cancelled: one line saying so and when, exit 0 (as the API's second
    cancel answers 200), the cancel's time and the rows as they were."""
    name = f"cancel twice {tmp_path.name}"  # the PostgreSQL schema is the session's
    url = database_with_jobs(database_url, {"name": name, "submitted_at": utcnow()})
    job = _jobs(url)[name]
    env = make_env(database_url=url)
    first = run_cli("cancel", job.id, env=env, cwd=tmp_path)
    assert first.stderr.strip() == f"job {job.id}: cancelled, 10 pending images skipped, of 10"
    when = as_utc(_jobs(url)[name].cancelled_at)

    again = run_cli("cancel", job.id, env=env, cwd=tmp_path)
    assert "Traceback" not in again.stderr and again.stdout == "", again.stderr
    assert again.stderr.strip() == (
        f"job {job.id}: already cancelled at {when:%Y-%m-%d %H:%M:%S} UTC"), again.stderr
    assert again.returncode == 0
    assert as_utc(_jobs(url)[name].cancelled_at) == when


def test_webhook_send_without_a_broker_records_it_for_the_stacks_reconciler(tmp_path):
    now = utcnow()
    url = sqlite_with_jobs(
        tmp_path / "sd.db",
        {"name": "ended", "submitted_at": now, "cancelled_at": now, "webhook_url": HOOK,
         "webhook_state": "failed", "webhook_attempts": 3, "webhook_last_status": "500"},
        {"name": "running", "submitted_at": now, "webhook_url": HOOK,
         "webhook_state": "failed", "webhook_attempts": 1, "webhook_last_status": "500"},
        {"name": "no hook", "submitted_at": now, "cancelled_at": now})
    jobs = _jobs(url)
    env = make_env(database_url=url, stall_seconds="42")

    sent = run_cli("webhook", "send", jobs["ended"].id, env=env, cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    assert sent.stderr.strip() == (
        f"job {jobs['ended'].id}: webhook {SHOWN}: sending (3 attempts); the workers of the "
        "running stack send it within 42 s (no broker answered here)")
    assert "secret" not in sent.stdout + sent.stderr
    ended = _jobs(url)["ended"]
    # Recorded as sending, claimed now, its count kept: the reconciler sends attempt 4.
    assert (ended.webhook_state, ended.webhook_attempts, ended.webhook_last_status) == (
        "sending", 3, None)
    assert ended.webhook_claimed_at is not None

    # A job still running: its webhook is wanted again, sent when it ends.
    later = run_cli("webhook", "send", jobs["running"].id, env=env, cwd=tmp_path)
    assert later.returncode == 0, later.stderr
    assert later.stderr.strip() == (
        f"job {jobs['running'].id}: webhook {SHOWN}: sent when the job ends")
    assert _jobs(url)["running"].webhook_state == "pending"
    unchanged = run_cli("webhook", "send", jobs["running"].id, env=env, cwd=tmp_path)
    one_line_error(unchanged, 1, "has not ended; its webhook is sent when it does")

    none = run_cli("webhook", "send", jobs["no hook"].id, env=env, cwd=tmp_path)
    one_line_error(none, 1, "has no webhook; give it a URL to send one")
