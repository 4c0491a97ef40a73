"""The docker-compose topology, started natively with the same commands and variables:
a Redis-compatible server with a password, the PostgreSQL at 127.0.0.1:5432, a migration
step, two workers with different host names, Flower with basic auth, a submit from the
host, and the rows checked in PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from signdigits.db.models import Image
from signdigits.db.session import session_factory
from signdigits.stack.valkey import free_port
from tests.conftest import REPO, RunningWorker, copy_sample, run_cli, start_valkey, wait_for_http
from tests.waiting import wait_until

FLOWER_USER, FLOWER_PASSWORD = "operator", "s3cret-flower-pw"
REDIS_PASSWORD = "s3cret-redis-pw"


def _compose_env(broker_url: str, database_url: str, allowed_root: Path) -> dict[str, str]:
    """What docker-compose.yml's x-app-env gives every application service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNDIGITS_")}
    env.update(
        SIGNDIGITS_BROKER_URL=broker_url,
        SIGNDIGITS_DATABASE_URL=database_url,
        SIGNDIGITS_ENVIRONMENT="production",
        SIGNDIGITS_ALLOWED_ROOTS=json.dumps([str(allowed_root)]),
    )
    return env


def _get(url: str, auth: bool = True):
    headers = {}
    if auth:
        token = base64.b64encode(f"{FLOWER_USER}:{FLOWER_PASSWORD}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture
def cluster(postgres_url, tmp_path):
    redis = start_valkey(password=REDIS_PASSWORD)
    broker_url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis.port}/0"
    data = tmp_path / "data"
    data.mkdir()
    env = _compose_env(broker_url, postgres_url, data)
    processes = []
    try:
        migrate = subprocess.run([sys.executable, "-m", "signdigits", "db", "upgrade"], env=env,
                                 cwd=REPO, capture_output=True, text=True, timeout=120)
        assert migrate.returncode == 0, migrate.stderr
        workers = [
            RunningWorker(env, f"signdigits@host-{n}", tmp_path / f"worker-{n}.log")
            for n in ("a", "b")
        ]
        processes += workers
        flower_port = free_port()
        flower_log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115
        flower = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "signdigits.worker", "flower",
             f"--port={flower_port}", "--address=127.0.0.1",
             f"--basic-auth={FLOWER_USER}:{FLOWER_PASSWORD}"],
            env=env, cwd=REPO, stdout=flower_log, stderr=subprocess.STDOUT,
        )
        from signdigits.broker.app import create_app
        from signdigits.config.settings import Settings

        app = create_app(Settings(broker_url=broker_url, database_url=postgres_url))
        for worker in workers:
            worker.wait_ready(app)
        wait_for_http(f"http://127.0.0.1:{flower_port}/")
        yield {"env": env, "data": data, "flower": f"http://127.0.0.1:{flower_port}",
               "database_url": postgres_url, "workers": workers}
    finally:
        if "flower" in locals():
            flower.terminate()
            flower.wait(10)
            flower_log.close()
        for worker in processes:
            worker.stop()
        redis.stop()


def test_compose_topology_natively(cluster, dataset):
    truth = copy_sample(dataset, cluster["data"] / "batch-1", per_digit=12, seed=4)
    submitted = subprocess.run(
        [sys.executable, "-m", "signdigits", "submit", str(cluster["data"] / "batch-1"),
         "--batch-size", "8", "--wait"],
        env=cluster["env"], cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    assert submitted.stdout.strip(), submitted.stderr[-3000:]
    job_id = submitted.stdout.strip().splitlines()[0]

    with session_factory(cluster["database_url"])() as session:
        rows = list(session.scalars(select(Image).where(Image.job_id == job_id)))
    assert sorted(r.path for r in rows) == sorted(truth), f"{len(rows)} rows"
    correct = sum(r.digit == truth[r.path] for r in rows)
    assert correct >= 0.95 * len(truth), f"{correct}/{len(truth)} correct"
    # Which worker takes which batch is the broker's choice; both are checked in Flower.
    assert {r.worker for r in rows} <= {"signdigits@host-a", "signdigits@host-b"}

    flower = cluster["flower"]
    # /api/workers asks the workers by broadcast with a short timeout; a busy machine
    # can miss one reply, so ask again before concluding.
    wait_until(lambda: {"signdigits@host-a", "signdigits@host-b"} <= set(
        _get(f"{flower}/api/workers?refresh=1")), timeout=30, interval=1,
        message="Flower to see both workers",
        details=lambda: f"Flower sees {sorted(_get(f'{flower}/api/workers'))}")

    # Flower learns of tasks from events, which may trail the rows by a moment.
    def our_tasks() -> list[dict]:
        tasks = _get(f"{flower}/api/tasks")
        return [t for t in tasks.values() if job_id in (t.get("args") or "")]

    def all_succeeded() -> list[dict] | None:
        ours = our_tasks()
        return ours if len(ours) == 15 and {t["state"] for t in ours} == {"SUCCESS"} else None

    ours = wait_until(all_succeeded, timeout=30, interval=0.5,
                      message=f"Flower to show job {job_id}'s 15 tasks succeeded",
                      details=lambda: f"states {[t['state'] for t in our_tasks()]}")
    assert {t["name"] for t in ours} == {
        f"classify_batch job={job_id[:8]} batch={n}" for n in range(15)
    }
    # Each task reports where its time went; Flower shows it as the task's result.
    assert all("'decode_and_model':" in (t.get("result") or "") for t in ours), ours[0]

    with pytest.raises(urllib.error.HTTPError) as refused:
        _get(f"{flower}/api/workers", auth=False)
    assert refused.value.code == 401


def test_submit_outside_allowed_roots_is_refused(cluster, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "a.jpg").write_bytes(b"x")
    result = subprocess.run(
        [sys.executable, "-m", "signdigits", "submit", str(outside)],
        env=cluster["env"], cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0 and "SIGNDIGITS_ALLOWED_ROOTS" in result.stderr


def test_ready_is_the_worker_health_check(cluster):
    # What the compose and Dockerfile health checks run, against the running workers.
    ready = run_cli("ready", "signdigits@host-a", env=cluster["env"], cwd=REPO)
    assert ready.returncode == 0, ready.stderr
    assert "ready, 1 of 1 processes have the model loaded" in ready.stdout

    absent = run_cli("ready", "signdigits@no-such-host", "--timeout", "1",
                     env=cluster["env"], cwd=REPO)
    assert absent.returncode == 1
    assert "no reply" in absent.stderr
