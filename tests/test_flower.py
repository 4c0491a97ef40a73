"""`signdigits flower` as compose runs it: every path asks for the credentials, and what it
keeps (tasks, metrics' labels) stays bounded however many batches pass."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.conftest import REPO, make_env, record, wait_for_http
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
