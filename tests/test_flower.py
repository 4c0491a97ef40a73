"""`signdigits flower` as compose runs it: every path asks for the credentials, and what it
keeps (tasks, metrics' labels) stays bounded however many batches pass."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.conftest import REPO, make_env, wait_for_http
from tests.figures import record
from tests.waiting import wait_until

AUTH = ("operator", "s3cret-flower-pw")


@pytest.fixture(scope="module")
def flower(redis_url, tmp_path_factory):
    from signdigits.stack.valkey import free_port

    port = free_port()
    broker_url = redis_url.rsplit("/", 1)[0] + "/12"
    env = make_env(broker_url=broker_url, flower_basic_auth=":".join(AUTH))
    env["FLOWER_MAX_TASKS"] = "5"  # the cap the launcher sets, small enough to reach
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", str(REPO))
    log = tmp_path_factory.mktemp("flower") / "flower.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "signdigits", "flower", "--port", str(port)], env=env,
            cwd=REPO, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            client.broker_url, client.log = broker_url, log
            yield client
    finally:
        process.terminate()
        process.wait(20)


@pytest.mark.parametrize("path", ["/metrics", "/healthcheck", "/api/workers", "/"])
def test_every_path_asks_for_the_credentials(flower, path):
    assert flower.get(path).status_code == 401
    assert flower.get(path, auth=(AUTH[0], "wrong")).status_code == 401
    assert flower.get(path, auth=AUTH).status_code == 200


def test_tasks_and_metrics_stay_bounded(flower):
    """Batches' task events, sent as a worker sends them: Flower keeps at most the cap of
    tasks, and labels its metrics by task type, not by each batch's name."""
    from signdigits.broker.app import create_app
    from signdigits.broker.messages import display_name
    from signdigits.config.settings import Settings

    app = create_app(Settings(broker_url=flower.broker_url))
    sent: list[str] = []

    def send_batches() -> None:
        with app.events.default_dispatcher(hostname="signdigits@trust-test") as dispatcher:
            for batch in range(4):
                task_id = str(uuid.uuid4())
                sent.append(task_id)
                dispatcher.send("task-received", uuid=task_id, retries=0, eta=None,
                                name=display_name(uuid.uuid4().hex, batch), args="[]",
                                kwargs="{}", root_id=task_id, parent_id=None)

    def tasks() -> dict:
        return flower.get("/api/tasks", auth=AUTH).json()

    # Flower hears events only once its receiver is connected: send until it has some.
    def heard_enough() -> bool:
        send_batches()
        return len(sent) >= 12 and sent[-1] in tasks()

    wait_until(heard_enough, timeout=60, interval=0.5, message="Flower to hear the tasks",
               details=lambda: flower.log.read_text()[-2000:])
    kept = len(tasks())
    assert kept <= 5
    metrics = flower.get("/metrics", auth=AUTH).text
    assert 'task="classify_batch"' in metrics
    assert "job=" not in metrics and "batch=" not in metrics
    record("Flower after many batches' task events (max_tasks 5)",
           {"batches sent": len(sent), "tasks kept": kept, "/metrics bytes": len(metrics),
            "/metrics without credentials": flower.get("/metrics").status_code})


def test_serve_with_flower_prints_the_broker_and_links_a_flower_behind_the_webs_login(
        tmp_path, dataset):
    """`serve --flower` on its embedded stack: the broker's address printed with its
    password masked, Flower on the same broker asking for the web's own credentials, the
    job page linking it, and the job's batches in it."""
    import threading

    from signdigits.stack.valkey import free_port
    from tests.conftest import sample_images

    port, flower_port = free_port(), free_port()
    web_auth = ("ann", "a-real-secret-pw")
    env = make_env(concurrency="1", web_auth=":".join(web_auth))
    env["XDG_DATA_HOME"] = str(tmp_path)
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", str(REPO))
    serve = subprocess.Popen(
        [sys.executable, "-m", "signdigits", "serve", "--port", str(port), "--flower",
         "--flower-port", str(flower_port)], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(serve.stdout), daemon=True).start()
    try:
        wait_until(lambda: any(line.startswith("signdigits web at") for line in lines)
                   or serve.poll() is not None, timeout=120, message="serve started")
        said = "".join(lines)
        assert serve.poll() is None, said
        broker = next(line for line in lines if line.startswith("broker: "))
        assert broker.startswith("broker: redis://:***@127.0.0.1:"), broker
        assert f"Flower at http://127.0.0.1:{flower_port}/ (the web's user and password)" in said
        flower_url = f"http://127.0.0.1:{flower_port}"
        assert httpx.get(flower_url + "/").status_code == 401
        assert httpx.get(flower_url + "/", auth=web_auth).status_code == 200
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=web_auth,
                          timeout=60) as web:
            photo, _digit = sample_images(dataset, 1, seed=4)[0]
            job = web.post("/api/jobs", files=[("files", (photo.name, photo.read_bytes()))])
            assert job.status_code == 201, job.text
            job_id = job.json()["id"]
            assert f'href="{flower_url}/tasks"' in web.get(f"/jobs/{job_id}").text
        # Flower watches the stack's own broker: the job's batch shows among its tasks.
        wait_until(lambda: any(job_id[:8] in (task.get("name") or "") for task in httpx.get(
            flower_url + "/api/tasks", auth=web_auth, timeout=30).json().values()),
            timeout=120, message="the job's batch in Flower")
    finally:
        serve.send_signal(2)
        serve.wait(60)
    assert "stopped" in "".join(lines)
