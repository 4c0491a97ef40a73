"""Every role of the Docker image, run for real under a Docker engine.

Run by scripts/test-docker, which starts dockerd when none runs, builds a local base image
(scripts/docker-base) and the image, then runs this module with SIGNDIGITS_DOCKER_IMAGE
set; the default suite does not collect it (tests/conftest.py). Every container uses
``--network host`` and reaches a private Valkey (with a password) and a fresh database on
the PostgreSQL at 127.0.0.1:5432, with the commands and variables of docker-compose.yml's
services (host and port changed to 127.0.0.1 and free ports; the visibility timeout
shortened so that a killed worker's batch comes back within the test).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from signdigits.broker.app import create_app
from signdigits.config.settings import Settings
from signdigits.producer.enqueue import broker_holds_messages_of
from signdigits.stack.valkey import free_port
from tests.conftest import POSTGRES_URL, account, copy_sample, start_valkey
from tests.figures import record
from tests.waiting import wait_until

IMAGE = os.environ.get("SIGNDIGITS_DOCKER_IMAGE", "")
if not IMAGE:
    pytest.skip("needs an image: run scripts/test-docker", allow_module_level=True)

REDIS_PASSWORD = "s3cret-redis-pw-docker"
FLOWER_AUTH = ("operator", "s3cret-flower-pw-docker")
WEB_AUTH = ("viewer", "s3cret-web-pw-docker")
VISIBILITY_TIMEOUT = 10
RUN = uuid.uuid4().hex[:6]


def docker(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: exit {result.returncode}\n"
                             f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result


def inspect(name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def logs(name: str) -> str:
    result = docker("logs", "--tail", "60", name, check=False)
    return result.stdout + result.stderr


def http(url: str, auth: tuple[str, str] | None = None):
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return json.loads(r.read())


class Cluster:
    """The compose services as ``docker run --network host`` containers, removed at the end."""

    def __init__(self, data: Path, database_url: str, broker_url: str) -> None:
        self.data = data
        self.database_url = database_url
        self.containers: list[str] = []
        self.volumes: list[str] = []
        self.env = {  # docker-compose.yml's x-app-env, on 127.0.0.1
            "SIGNDIGITS_ENVIRONMENT": "production",
            "SIGNDIGITS_BROKER_URL": broker_url,
            "SIGNDIGITS_DATABASE_URL": database_url,
            "SIGNDIGITS_ALLOWED_ROOTS": '["/data"]',
            "SIGNDIGITS_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        }
        self.flower_port = free_port()
        self.web_port = free_port()
        self.workers = [f"sdtest-{RUN}-worker-{n}" for n in ("a", "b")]
        self.flower = f"sdtest-{RUN}-flower"
        self.web = f"sdtest-{RUN}-web"

    def _env_args(self, extra: dict[str, str] | None = None) -> list[str]:
        return [a for k, v in {**self.env, **(extra or {})}.items() for a in ("-e", f"{k}={v}")]

    def run(self, *command: str, volumes: tuple[str, ...] = (), timeout: float = 600,
            entrypoint: str | None = None) -> subprocess.CompletedProcess:
        """A one-off container (the migrate and cli services), removed when it exits."""
        args = ["run", "--rm", "--network", "host", "--no-healthcheck", *self._env_args()]
        args += [a for v in volumes for a in ("-v", v)]
        if entrypoint:
            args += ["--entrypoint", entrypoint]
        return docker(*args, IMAGE, *command, timeout=timeout, check=False)

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        # the compose cli service: entrypoint signdigits, the images folder at /data (ro)
        return self.run(*args, volumes=(f"{self.data}:/data:ro",), entrypoint="signdigits",
                        timeout=timeout)

    def start(self, name: str, *command: str, extra_env: dict[str, str] | None = None,
              volumes: tuple[str, ...] = (), healthcheck: bool = False) -> None:
        args = ["run", "-d", "--name", name, "--hostname", name, "--network", "host",
                *self._env_args(extra_env)]
        args += [a for v in volumes for a in ("-v", v)]
        # The image's own HEALTHCHECK command, checked every 5 s instead of 60 s.
        args += ["--health-interval", "5s"] if healthcheck else ["--no-healthcheck"]
        self.containers.append(name)
        docker(*args, IMAGE, *command)

    def start_worker(self, name: str) -> None:
        # the compose worker service (WORKER_CONCURRENCY=1: two cores on this machine)
        self.start(name, "signdigits", "worker", "--concurrency", "1", "-n", "signdigits@%h",
                   volumes=(f"{self.data}:/data:ro",), healthcheck=True)

    def wait_healthy(self, name: str, timeout: float = 300) -> dict:
        def healthy():
            state = inspect(name)["State"]
            assert state["Running"], f"{name} exited {state['ExitCode']}:\n{logs(name)}"
            return state if state.get("Health", {}).get("Status") == "healthy" else None

        return wait_until(healthy, timeout=timeout, interval=0.5, message=f"{name} healthy",
                          details=lambda: f"{inspect(name)['State'].get('Health')}\n{logs(name)}")

    def rows(self, job_id: str):
        from sqlalchemy import select

        from signdigits.db.models import Image
        from signdigits.db.session import session_factory

        with session_factory(self.database_url)() as session:
            return list(session.scalars(select(Image).where(Image.job_id == job_id)))

    def remove(self) -> None:
        for name in self.containers:
            docker("rm", "-f", "-v", name, check=False)
        for volume in self.volumes:
            docker("volume", "rm", "-f", volume, check=False)


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A new database on the PostgreSQL at 127.0.0.1:5432, dropped afterwards."""
    import psycopg

    admin = POSTGRES_URL.replace("+psycopg", "")
    name = f"sd_docker_{RUN}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        # plain postgresql://, as in docker-compose.yml; the host's own role (trust auth)
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def cluster(database, tmp_path_factory) -> Iterator[Cluster]:
    data = tmp_path_factory.mktemp("docker-data")
    data.chmod(0o755)  # the container user (a system uid) must read it
    redis = start_valkey(password=REDIS_PASSWORD)
    cluster = Cluster(data, database, f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis.port}/0")
    try:
        migrate = cluster.run("signdigits", "db", "upgrade")
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        for name in cluster.workers:
            cluster.start_worker(name)
        cluster.start(cluster.flower, "signdigits", "flower", "--address", "127.0.0.1",
                      "--port", str(cluster.flower_port),
                      extra_env={"SIGNDIGITS_FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH)})
        uploads = f"sdtest-{RUN}-uploads"
        cluster.volumes.append(uploads)
        cluster.start(cluster.web, "signdigits", "serve", "--host", "127.0.0.1",
                      "--port", str(cluster.web_port),
                      extra_env={"SIGNDIGITS_WEB_AUTH": ":".join(WEB_AUTH),
                                 "SIGNDIGITS_UPLOAD_DIR": "/home/signdigits/uploads",
                                 "SIGNDIGITS_FLOWER_URL": f"http://127.0.0.1:{cluster.flower_port}"},
                      volumes=(f"{data}:/data:ro", f"{uploads}:/home/signdigits/uploads"))
        yield cluster
    finally:
        cluster.remove()
        redis.stop()


def test_migrate_ran_and_workers_are_healthy_once_the_model_is_loaded(cluster):
    for name in cluster.workers:
        state = cluster.wait_healthy(name)
        assert state["Health"]["Log"][-1]["ExitCode"] == 0
        # What the HEALTHCHECK asks, asked again: every pool process has the model.
        ready = docker("exec", name, "sh", "-c", 'signdigits ready "signdigits@$HOSTNAME"')
        assert "ready, 1 of 1 processes have the model loaded" in ready.stdout, ready.stdout


def test_processes_run_as_the_image_user_and_data_is_read_only(cluster):
    for name in cluster.workers:
        cluster.wait_healthy(name)
    for name in [*cluster.workers, cluster.flower, cluster.web]:
        uid = docker("exec", name, "id", "-u").stdout.strip()
        user = docker("exec", name, "id", "-un").stdout.strip()
        assert uid != "0" and user == "signdigits", (name, uid, user)
        # every process of the container, seen from the engine (a worker: parent + pool)
        table = docker("top", name, "-eo", "uid,pid,args").stdout.strip().splitlines()[1:]
        assert table, name
        assert {line.split()[0] for line in table} == {uid}, (name, table)
    for name in [*cluster.workers, cluster.web]:
        mounts = {m["Destination"]: m for m in inspect(name)["Mounts"]}
        assert mounts["/data"]["RW"] is False, mounts
        touch = docker("exec", name, "touch", "/data/written-by-a-container", check=False)
        assert touch.returncode != 0 and "Read-only file system" in touch.stderr, touch.stderr
    assert not (cluster.data / "written-by-a-container").exists()


@pytest.fixture(scope="module")
def first_job(cluster, dataset) -> tuple[str, dict[str, int]]:
    truth = copy_sample(dataset, cluster.data / "batch-1", per_digit=20, seed=18)
    for name in cluster.workers:
        cluster.wait_healthy(name)
    submitted = cluster.cli("submit", "/data/batch-1", "--batch-size", "8", "--wait")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr[-3000:]
    job_id = submitted.stdout.strip().splitlines()[0]
    return job_id, truth


def test_cli_submits_a_folder_by_its_data_path_and_every_row_is_in_postgres(cluster, first_job):
    job_id, truth = first_job
    rows = cluster.rows(job_id)
    assert sorted(r.path for r in rows) == sorted(truth), f"{len(rows)} rows"
    assert all(r.status == "done" for r in rows), {r.status for r in rows}
    correct = sum(r.digit == truth[r.path] for r in rows)
    assert correct >= 0.95 * len(truth), f"{correct}/{len(truth)} correct"
    assert {r.worker for r in rows} <= {f"signdigits@{n}" for n in cluster.workers}
    status = cluster.cli("status", job_id)
    assert status.returncode == 0 and job_id in status.stdout, status.stdout + status.stderr
    record("docker: cli submit --wait, 2 worker containers",
           {"images": len(truth), "rows": len(rows), "correct": correct})


def test_flower_lists_both_workers_and_refuses_anonymous_requests(cluster, first_job):
    flower = f"http://127.0.0.1:{cluster.flower_port}"
    wanted = {f"signdigits@{n}" for n in cluster.workers}

    def sees_both():
        try:
            return wanted <= set(http(f"{flower}/api/workers?refresh=1", auth=FLOWER_AUTH))
        except OSError:
            return False

    wait_until(sees_both, timeout=120, interval=0.5, message="Flower to list both workers",
               details=lambda: logs(cluster.flower))
    with pytest.raises(urllib.error.HTTPError) as refused:
        http(f"{flower}/api/workers")
    assert refused.value.code == 401


def test_web_api_answers(cluster, first_job):
    job_id, truth = first_job
    web = f"http://127.0.0.1:{cluster.web_port}"

    def answers():
        try:
            return http(f"{web}/healthz")
        except OSError:
            return None

    wait_until(answers, timeout=120, interval=0.5, message="the web service to answer",
               details=lambda: logs(cluster.web))
    job = http(f"{web}/api/jobs/{job_id}", auth=WEB_AUTH)
    assert job["state"] == "done" and job["done"] == len(truth), job
    assert job["folder"] == "/data/batch-1", job
    with pytest.raises(urllib.error.HTTPError) as refused:
        http(f"{web}/api/jobs/{job_id}")
    assert refused.value.code == 401


def test_stop_and_kill_of_the_workers_mid_job_then_back_every_row_once(cluster, dataset):
    # 600 one-image batches: long enough to be mid-job however fast the runtime is
    truth = copy_sample(dataset, cluster.data / "batch-2", per_digit=60, seed=81)
    for name in cluster.workers:
        cluster.wait_healthy(name)
    submitted = cluster.cli("submit", "/data/batch-2", "--batch-size", "1")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr[-3000:]
    job_id = submitted.stdout.strip().splitlines()[0]

    def counts() -> dict[str, int]:
        found: dict[str, int] = {}
        for row in cluster.rows(job_id):
            found[row.status] = found.get(row.status, 0) + 1
        return found

    wait_until(lambda: counts().get("done", 0) >= 2, timeout=120, interval=0.5,
               message="the first results", details=lambda: str(counts()))
    stopper, doomed = cluster.workers
    # SIGTERM (Celery's warm shutdown: the running batch finishes, nothing new is taken),
    # and at once SIGKILL of the other: its unacknowledged batch must come back.
    stopping = subprocess.Popen(["docker", "stop", "--time", "120", stopper],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stopped_at = time.monotonic()
    docker("kill", doomed)
    pending = counts().get("pending", 0)
    assert stopping.wait(180) == 0, stopping.stderr.read()
    stop_seconds = round(time.monotonic() - stopped_at, 1)
    assert pending > 0, "the job finished before the workers went: the test proves nothing"
    assert inspect(stopper)["State"]["ExitCode"] == 0, logs(stopper)  # warm, not killed
    assert inspect(doomed)["State"]["ExitCode"] == 137

    for name in cluster.workers:
        docker("start", name)
    for name in cluster.workers:
        cluster.wait_healthy(name)
    back_at = time.monotonic()
    # A worker SIGKILLed between Redis's BRPOP and kombu's write of the message to its
    # unacked hash loses that message: the broker holds it nowhere (kombu's Redis
    # transport is not atomic there). The rows stay pending and `signdigits resume`, which
    # re-sends only when the broker holds none of the job's messages, finishes them; an
    # operator sees it in `status` (stalled). So: wait until done, or until the broker
    # holds nothing of the job while rows are pending, then resume as they would.
    broker = create_app(Settings(broker_url=cluster.env["SIGNDIGITS_BROKER_URL"]))

    def finished_or_lost():
        if "pending" not in counts():
            return "done"
        if not broker_holds_messages_of(broker, job_id) and "pending" in counts():
            return "lost"
        return None

    outcome = wait_until(finished_or_lost, timeout=360, interval=0.5,
                         message="every row stored (or the broker empty of the job)",
                         details=lambda: f"{counts()}\n{logs(stopper)}\n{logs(doomed)}")
    resumed = 0
    if outcome == "lost":
        pending_lost = counts().get("pending", 0)
        again = cluster.cli("resume", job_id)
        assert again.returncode == 0, again.stdout + again.stderr[-3000:]
        resumed = pending_lost
        wait_until(lambda: "pending" not in counts(), timeout=120, interval=0.5,
                   message="every row stored after resume",
                   details=lambda: f"{counts()}\n{logs(stopper)}\n{logs(doomed)}")
    rows = cluster.rows(job_id)
    figures = account(rows, list(truth))
    figures["pending when stopped"] = pending
    figures["rows resumed (message lost by the kill)"] = resumed
    figures["warm shutdown s"] = stop_seconds
    figures["healthy again after s"] = round(back_at - stopped_at, 1)
    figures["complete after s"] = round(time.monotonic() - stopped_at, 1)
    record(f"docker: stop + kill of both workers mid-job (visibility timeout "
           f"{VISIBILITY_TIMEOUT} s)", figures)
    assert figures["rows"] == len(truth) and figures["missing"] == 0
    assert figures["duplicates"] == 0
    assert all(r.status == "done" for r in rows), {r.status for r in rows}


def test_the_serving_image_is_under_500_mb():
    size_mb = inspect(IMAGE)["Size"] / 1e6
    has_tensorflow = docker("run", "--rm", "--network", "host", "--no-healthcheck", IMAGE,
                            "python", "-c", "import importlib.util as u; "
                            "print(u.find_spec('tensorflow') is not None)").stdout.strip()
    record("docker: image size", {"MB": round(size_mb), "tensorflow inside": has_tensorflow})
    if has_tensorflow == "True":
        pytest.skip(f"the image is {size_mb:.0f} MB with TensorFlow inside: the 500 MB limit "
                    "applies to the serving image, once `pip install .` no longer brings it")
    assert size_mb < 500, f"the serving image is {size_mb:.0f} MB"


def test_the_image_reads_an_object_from_s3(tmp_path):
    """boto3 is in the image, and what was pruned of botocore leaves S3 working: the
    image's own reader takes an object from a real S3 server (SeaweedFS) on the host."""
    from tests.s3_server import S3Server

    server = S3Server(tmp_path / "s3")
    server.start()
    try:
        bucket = server.new_bucket()
        body = b"\xff\xd8 the bytes of a photo"
        server.client().put_object(Bucket=bucket, Key="in/1.jpg", Body=body)
        env = [f"--env={name}={value}" for name, value in server.env().items()]
        read = docker("run", "--rm", "--network", "host", "--no-healthcheck", *env, IMAGE,
                      "python", "-c", "from signdigits.files.objects import JobObjects; "
                      f"print(len(JobObjects('s3://{bucket}/in/', allowed_roots=[])"
                      ".read('1.jpg', max_bytes=1000, etag=None)))")
    finally:
        server.stop()
    assert read.stdout.strip() == str(len(body)), read.stdout + read.stderr
