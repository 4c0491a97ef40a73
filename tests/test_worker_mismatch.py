"""Workers that cannot serve a job take none of its batches: real workers, real brokers.

A worker without a loadable model exits before consuming anything; a worker whose
database does not hold the job puts its batches back, says so in its log and to
`status`; and every process started without SIGNDIGITS_DATABASE_URL, from any folder,
uses the same SQLite file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from signdigits.broker.app import QUEUE
from signdigits.serving.hands.models import MODEL_FILES
from tests.conftest import REPO, Stack, copy_sample, make_env, run_cli
from tests.waiting import wait_until


@pytest.fixture
def stack(redis_url, tmp_path):
    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'producer.db'}", tmp_path)
    yield stack
    stack.stop()


def _wait_for_line(log: Path, text: str, timeout: float = 120) -> str:
    def content() -> str:
        return log.read_text(errors="replace") if log.exists() else ""

    def with_the_line() -> str:
        found = content()
        return found if text in found else ""

    return wait_until(with_the_line, timeout=timeout, message=f"{text!r} in {log}",
                      details=lambda: content()[-3000:])


def test_worker_without_a_model_exits_before_taking_a_batch(stack, dataset, tmp_path):
    copy_sample(dataset, tmp_path / "photos", per_digit=2)
    job_id = stack.submit(tmp_path / "photos", "--batch-size", "5")
    queued = redis.Redis.from_url(stack.broker_url).llen(QUEUE)
    assert queued == 4
    bad_env = {**stack.env, "SIGNDIGITS_MODEL_PATH": "/etc/passwd"}
    # The command, and Celery's own entry point (what compose or a unit file may run).
    commands = {
        "signdigits worker": [sys.executable, "-m", "signdigits", "worker"],
        "celery worker": [sys.executable, "-m", "celery", "-A", "signdigits.worker", "worker",
                          "--loglevel", "INFO"],
    }
    for name, command in commands.items():
        process = subprocess.Popen(command, env=bad_env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            raise AssertionError(f"{name} with a bad model stayed up:\n{stderr[-3000:]}") from None
        assert process.returncode != 0, name
        errors = [line for line in stderr.splitlines() if line.startswith("error")]
        assert errors == [
            f"error: {'' if name == 'signdigits worker' else 'cannot start the worker: '}"
            "/etc/passwd: not a .keras model archive"
        ], stderr
    # Nothing was taken: every message is still queued, every row pending.
    assert redis.Redis.from_url(stack.broker_url).llen(QUEUE) == queued
    assert stack.counts(job_id) == {"pending": 20}
    stack.start_worker(concurrency=1)
    stack.wait_for(job_id, timeout=180)
    assert stack.counts(job_id) == {"done": 20}


def test_workers_and_run_without_the_hand_models_exit_before_taking_a_batch(
        stack, dataset, tmp_path):
    """Missing or altered hand models: one line naming the command that fetches them."""
    from tests.test_cli_errors import one_line_error

    copy_sample(dataset, tmp_path / "photos", per_digit=1)
    job_id = stack.submit(tmp_path / "photos", "--batch-size", "5")
    queued = redis.Redis.from_url(stack.broker_url).llen(QUEUE)
    missing, altered = tmp_path / "missing", tmp_path / "altered"
    altered.mkdir()
    for name in MODEL_FILES:
        (altered / name).write_bytes(b"not the pinned model")
    commands = {
        "signdigits worker": [sys.executable, "-m", "signdigits", "worker"],
        "celery worker": [sys.executable, "-m", "celery", "-A", "signdigits.worker", "worker",
                          "--loglevel", "INFO"],
    }
    for folder, says in ((missing, "is missing: run `signdigits fetch-hand-models`"),
                         (altered, "is not the pinned file")):
        env = {**stack.env, "SIGNDIGITS_HAND_MODELS_DIR": str(folder)}
        for name, command in commands.items():
            process = subprocess.run(command, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                     capture_output=True, text=True, timeout=120)
            assert process.returncode != 0, name
            errors = [line for line in process.stderr.splitlines() if line.startswith("error")]
            assert len(errors) == 1 and says in errors[0], process.stderr[-3000:]
            assert str(folder / "palm_detection_lite.tflite") in errors[0]
        # `run` says it before it starts a broker or a worker.
        one_line_error(run_cli("run", str(tmp_path / "photos"), env=env, cwd=tmp_path), 1, says)
    assert redis.Redis.from_url(stack.broker_url).llen(QUEUE) == queued
    assert stack.counts(job_id) == {"pending": 10}


def test_worker_with_another_database_puts_the_batches_back(
    stack, empty_database_url, dataset, tmp_path
):
    other = empty_database_url
    if other.startswith("postgresql"):  # trust auth ignores it; the log must not show it
        other = other.replace("postgres@", "postgres:s3cret-pw@", 1)
    migrated = run_cli("db", "upgrade", env=make_env(database_url=other), cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    copy_sample(dataset, tmp_path / "photos", per_digit=2)
    stranger = stack.start_worker(concurrency=1, SIGNDIGITS_DATABASE_URL=other)
    job_id = stack.submit(tmp_path / "photos", "--batch-size", "5")
    shown = other.replace("s3cret-pw", "***")
    log = _wait_for_line(stranger.log, f"no such job in this worker's database {shown}")
    assert "ERROR" in log and "s3cret-pw" not in log
    assert stack.counts(job_id) == {"pending": 20}
    status = stack.cli("status", job_id)
    assert f"worker {stranger.name} has no such job in its database {shown}" in status.stdout, (
        status.stdout)
    # The batches were kept for a worker that knows the job: it finishes every one.
    stack.start_worker(concurrency=1)
    stack.wait_for(job_id, timeout=180)
    assert stack.counts(job_id) == {"done": 20}


def test_default_database_is_the_same_file_from_any_folder(redis_url, dataset, tmp_path):
    data_home = tmp_path / "data"
    expected = data_home / "signdigits" / "signdigits.db"
    stack = Stack(redis_url, "unused", tmp_path)
    env = {**make_env(broker_url=stack.broker_url), "XDG_DATA_HOME": str(data_home)}
    producer_folder, worker_folder = tmp_path / "producer", tmp_path / "elsewhere"
    producer_folder.mkdir()
    worker_folder.mkdir()
    copy_sample(dataset, tmp_path / "photos", per_digit=1)
    log = tmp_path / "worker.log"
    with open(log, "wb") as sink:
        worker = subprocess.Popen(
            [sys.executable, "-m", "signdigits", "worker", "-n", "elsewhere@localhost",
             "--concurrency", "1"],
            env=env, cwd=worker_folder, stdin=subprocess.DEVNULL, stdout=sink,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        from signdigits.worker.readiness import wait_for_models

        stack.database_url = f"sqlite:///{expected}"
        wait_for_models(stack.app(), name="elsewhere@localhost",
                        alive=lambda: worker.poll() is None)
        assert f"database sqlite:///{expected}" in log.read_text()  # the start line
        submitted = run_cli("submit", str(tmp_path / "photos"), env=env, cwd=producer_folder)
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.split()[0]
        stack.wait_for(job_id, timeout=180)
        assert stack.counts(job_id) == {"done": 10}
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert not (producer_folder / "signdigits.db").exists()
    assert not (worker_folder / "signdigits.db").exists()
    assert not (REPO / "signdigits.db").exists()
