"""Naming and deleting jobs from the command line: a prompt before anything is deleted,
a running job refused, a name no job can have refused in one line; a resumed job's rate."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

from tests.conftest import make_env, run_cli
from tests.test_cli_errors import one_line_error, sqlite_with_jobs


def test_delete_asks_first_and_refuses_a_job_that_has_not_ended(tmp_path):
    from sqlalchemy import func, select

    from signdigits.db.models import Image, Job, utcnow
    from signdigits.db.session import session_factory

    now = utcnow()
    url = sqlite_with_jobs(tmp_path / "sd.db", {"name": "walking", "submitted_at": None},
                           {"name": "cancelled one", "submitted_at": now, "cancelled_at": now})
    env = make_env(database_url=url)
    sessions = session_factory(url)
    with sessions() as session:
        ids = {job.name: job.id for job in session.scalars(select(Job))}
    said_no = subprocess.run([sys.executable, "-m", "signdigits", "delete", ids["cancelled one"]],
                             env=env, cwd=tmp_path, capture_output=True, text=True,
                             input="n\n", timeout=60)
    assert said_no.returncode == 1 and "error: nothing deleted" in said_no.stderr
    assert f"delete job {ids['cancelled one']} (cancelled one)" in said_no.stderr
    unanswered = run_cli("delete", ids["cancelled one"], env=env, cwd=tmp_path)
    assert unanswered.returncode == 1 and "nothing deleted" in unanswered.stderr
    refused = run_cli("delete", ids["walking"], "--yes", env=env, cwd=tmp_path)
    one_line_error(refused, 1, f"job {ids['walking']} (walking) has not ended: cancel it first")
    said_yes = subprocess.run([sys.executable, "-m", "signdigits", "delete", ids["cancelled one"]],
                              env=env, cwd=tmp_path, capture_output=True, text=True,
                              input="y\n", timeout=60)
    assert said_yes.returncode == 0, said_yes.stderr
    assert f"deleted job {ids['cancelled one']} (cancelled one)" in said_yes.stderr
    with sessions() as session:
        assert session.scalars(select(Job.name)).all() == ["walking"]
        assert session.scalar(select(func.count()).select_from(Image)) == 10


@pytest.mark.parametrize(("name", "said"), [
    ("", "cannot be empty"), ("x" * 201, "is at most 200"),
    ("a\tb\x1bc", "cannot hold control characters"),
    ("a\nb", "is one line: it cannot hold a line break"),  # not "a b" in silence
    ("x \u202e rtl", "cannot hold bidirectional control characters (U+202E)")])
def test_a_name_no_job_can_have_is_refused_before_anything_starts(name, said, tmp_path):
    env = make_env(database_url=f"sqlite:///{tmp_path / 'sd.db'}")
    for command in ("run", "submit"):
        result = run_cli(command, str(tmp_path), "--name", name, env=env, cwd=tmp_path)
        one_line_error(result, 2, f"--name: a job's name {said}")
    assert not (tmp_path / "sd.db").exists()


def test_a_job_resumed_after_an_hour_shows_the_rate_it_was_read_at(tmp_path):
    """Five images read 5 s in, the other five an hour later (workers down, then `resume`):
    10 images in 10 s of work, 1.0 a second; the hour had made it 0.0."""
    from sqlalchemy import update

    from signdigits.db.batches import refresh_batch_counts
    from signdigits.db.jobs import create_job
    from signdigits.db.manifest import add_manifest
    from signdigits.db.migrate import upgrade
    from signdigits.db.models import Image, ImageStatus, Job, utcnow
    from signdigits.db.session import session_factory

    url = f"sqlite:///{tmp_path / 'sd.db'}"
    upgrade(url)
    created = utcnow() - timedelta(hours=2)
    with session_factory(url).begin() as session:
        job = Job(id=uuid.uuid4().hex, root="/photos", threshold=0.5, batch_size=5,
                  total_images=10, total_batches=2, model_version="test", inline=False,
                  created_at=created, submitted_at=created)
        create_job(session, job=job)
        add_manifest(session, job_id=job.id,
                     rows=[(n // 5, f"{n}.jpg") for n in range(10)])
        for batch, seconds in ((0, 5), (1, 3610)):
            session.execute(
                update(Image).where(Image.job_id == job.id, Image.batch == batch)
                .values(status=ImageStatus.DONE, digit=1, confidence=0.9,
                        below_threshold=False,
                        finished_at=created + timedelta(seconds=seconds)))
        refresh_batch_counts(session, job_id=job.id)
    result = run_cli("status", "latest", env=make_env(database_url=url), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [row] = [line for line in result.stdout.splitlines() if "10/10" in line]
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[7] == "1.0", row
