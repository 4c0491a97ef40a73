"""Workers online, as the pages, the API and `status` tell them: a job that waits with no
worker says so, and stops saying so once one starts; the Models page names what the
workers online serve. Against a Valkey server of the test's own (no other test's worker
heartbeat on it), a real worker and Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Stack, copy_sample, require
from tests.waiting import wait_until
from tests.web_server import CHROMIUM, desktop_page, serving


@pytest.fixture
def own_broker():
    from signdigits.stack.valkey import EmbeddedBroker

    broker = EmbeddedBroker()
    url = broker.start()
    yield url
    broker.stop()


def test_a_job_with_no_worker_online_says_so_until_one_starts(own_broker, dataset,
                                                             tmp_path: Path):
    """A job had said "queued" and nothing else with every worker gone; its rate froze."""
    from signdigits.config.settings import Settings
    from signdigits.serving.artifact import read_model_info, shipped_model_path

    require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (scripts/test installs it)")
    copy_sample(dataset, tmp_path / "photos", per_digit=1)
    stack = Stack(own_broker, f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    settings = Settings(broker_url=stack.broker_url, database_url=stack.database_url,
                        upload_dir=tmp_path / "uploads")
    try:
        with serving(settings) as client, desktop_page() as page:
            assert client.get("/api/workers").json() == {"online": 0, "models": {}}
            job = client.post("/api/jobs", json={"folder": str(tmp_path / "photos")}).json()
            status = stack.cli("status", job["id"])
            assert "no worker is online (no heartbeat on the broker): the job waits" in \
                status.stdout, status.stdout
            page.goto(f"{client.base_url}/jobs/{job['id']}")
            page.wait_for_selector("#no-workers:visible")
            assert "No worker is online: this job waits until one starts" in page.inner_text(
                "#no-workers")
            page.goto(f"{client.base_url}/models")
            page.wait_for_selector("#models-workers:has-text('No worker is online')")

            stack.start_worker(concurrency=1)
            shipped = read_model_info(shipped_model_path()).version
            wait_until(lambda: client.get("/api/workers").json() == {
                "online": 1, "models": {shipped: 1}}, timeout=30,
                message="the worker's first heartbeat")
            page.goto(f"{client.base_url}/models")
            page.wait_for_selector(
                f"#models-workers:has-text('Workers online: 1, serving {shipped} (1 worker).')")
            page.goto(f"{client.base_url}/jobs/{job['id']}")
            page.wait_for_selector("#state:text-is('done')", timeout=120_000)
            assert page.is_hidden("#no-workers")
        assert "no worker is online" not in stack.cli("status", job["id"]).stdout
    finally:
        stack.stop()
