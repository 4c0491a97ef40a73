"""``GET /metrics`` after a real job, parsed by Prometheus' own parser; who may read it."""

from __future__ import annotations

import pytest

from tests.conftest import Stack, copy_sample
from tests.waiting import wait_until
from tests.web_server import serving

TOKEN = "scraper-token-0123456789"
AUTH = ("admin", "a-long-test-password")


def _scrape(client) -> dict:
    """name -> {labels as a sorted tuple: value}, every sample of the scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples: dict = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return samples


def _types(client) -> dict[str, str]:
    """family name -> its TYPE (counter, gauge, histogram), as Prometheus reads them."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    return {f.name: f.type for f in text_string_to_metric_families(answer.text)}


def _counters(samples: dict, types: dict[str, str]) -> dict:
    """(sample name, labels) -> value of every counter's ``_total`` sample."""
    return {(name, labels): value for name, values in samples.items()
            for labels, value in values.items()
            if name.endswith("_total") and types.get(name.removesuffix("_total")) == "counter"}


@pytest.fixture(params=["sqlite"])
def web(request, redis_url, tmp_path):
    from signdigits.config.settings import Settings

    database_url = f"sqlite:///{tmp_path / 'results.db'}"
    stack = Stack(redis_url, database_url, tmp_path)
    stack.start_worker(concurrency=1)
    settings = Settings(broker_url=stack.broker_url, database_url=database_url,
                        web_auth=":".join(AUTH), metrics_token=TOKEN)
    try:
        with serving(settings) as client:
            client.stack = stack
            yield client
    finally:
        stack.stop()


def test_metrics_after_a_real_job(web, dataset, tmp_path):
    photos = tmp_path / "photos"
    copy_sample(dataset, photos, 1)
    # The histogram counts batches from the first scrape's listener on.
    wait_until(lambda: _scrape(web)["signdigits_task_events_listening"][()] == 1, timeout=30,
               message="the metrics' task-event listener")
    answer = web.post("/api/jobs", json={"folder": str(photos), "batch_size": 4}, auth=AUTH)
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["id"]
    web.stack.wait_for(job_id)

    def finished(samples) -> int:
        jobs = samples["signdigits_jobs"]
        return jobs[(("state", "done"),)] + jobs[(("state", "done with errors"),)]

    def batches() -> int:
        # Read again each time: the job's count is 0 until its walk records the end, which
        # can come after every row was stored (a fast worker, a small job). Read once, it
        # had stayed 0 while the histogram counted 3.
        return web.stack.summary(job_id).job.total_batches

    samples = wait_until(
        lambda: (s := _scrape(web)) and finished(s) == 1
        and s["signdigits_batch_seconds_count"][()] == batches() > 0 and s, timeout=60,
        message="the job finished, and every batch in the histogram",
        details=lambda: f"batches {batches()}; scraped: " + repr({
            k: v for k, v in _scrape(web).items() if k in (
                "signdigits_batch_seconds_count", "signdigits_jobs",
                "signdigits_task_events_listening")}))
    job = web.stack.summary(job_id).job
    outcomes = {dict(k)["outcome"]: v for k, v in samples["signdigits_images_total"].items()}
    assert sum(outcomes.values()) == 10 and _rows(samples)["pending"] == 0
    # Each outcome named for what it counts: `done` is the API's word for every classified
    # row, so the rows at or above the threshold are `above_threshold`.
    assert set(outcomes) == {"above_threshold", "below_threshold", "error", "cancelled"}
    assert set(_rows(samples)) == set(outcomes) | {"pending"}
    shown = web.get(f"/api/jobs/{job_id}", auth=AUTH).json()
    assert outcomes["above_threshold"] == shown["done"] - shown["below_threshold"]
    assert outcomes["above_threshold"] + outcomes["below_threshold"] == web.stack.counts(
        job_id)["done"]
    assert samples["signdigits_queued_messages"][(("queue", "signdigits"),)] == 0
    assert samples["signdigits_workers_online"][()] == 1
    (labels,) = samples["signdigits_worker_info"]
    assert dict(labels)["model_version"] == job.model_version
    assert samples["signdigits_batch_seconds_bucket"][(("le", "+Inf"),)] == job.total_batches
    assert samples["signdigits_batch_seconds_sum"][()] > 0
    assert outcomes == {name: v for name, v in _rows(samples).items() if name != "pending"}
    assert samples["signdigits_images_per_second"][()] > 0  # stored within the minute
    assert samples["signdigits_webhooks"][(("state", "delivered"),)] == 0
    assert samples["signdigits_webhook_attempts_total"][()] == 0


def test_metrics_need_the_webs_credentials_or_their_own_token(web):
    assert web.get("/metrics").status_code == 401
    assert web.get("/metrics", headers={"authorization": "Bearer wrong-token-0123456"}
                   ).status_code == 401
    assert web.get("/metrics", auth=AUTH).status_code == 200
    # The scraper's token opens /metrics and nothing else.
    assert web.get("/api/jobs", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 401


def _rows(samples: dict) -> dict[str, float]:
    return {dict(k)["outcome"]: v for k, v in samples["signdigits_image_rows"].items()}


def test_no_counter_falls_when_a_job_is_deleted_and_pending_is_a_gauge(web, dataset, tmp_path):
    """Deleting a job removes its rows, not what they counted (deleted_totals): a counter
    that fell would read to Prometheus as a reset. Pending rows, which go down as work
    proceeds, are a gauge's, never a counter's. A restarted `serve` reads the same."""
    photos = tmp_path / "photos"
    copy_sample(dataset, photos, 1)
    answer = web.post("/api/jobs", json={"folder": str(photos), "batch_size": 4}, auth=AUTH)
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["id"]
    web.stack.wait_for(job_id)
    before = wait_until(lambda: (s := _scrape(web))["signdigits_jobs"][(("state", "done"),)]
                        + s["signdigits_jobs"][(("state", "done with errors"),)] == 1 and s,
                        timeout=60, message="the job finished")
    types = _types(web)
    assert web.delete(f"/api/jobs/{job_id}", auth=AUTH).status_code == 200
    after = _scrape(web)
    counted, now = _counters(before, types), _counters(after, types)
    assert ("signdigits_images_total", (("outcome", "above_threshold"),)) in counted
    fell = {key: (counted[key], now.get(key)) for key in counted
            if now.get(key, -1) < counted[key]}
    assert not fell, f"counters fell across the delete: {fell}"

    assert types["signdigits_images"] == "counter"
    assert (("outcome", "pending"),) not in before["signdigits_images_total"]
    assert types["signdigits_image_rows"] == "gauge"
    assert _rows(before)["pending"] == 0 and sum(_rows(before).values()) == 10
    assert after["signdigits_images_total"] == before["signdigits_images_total"]
    assert sum(after["signdigits_images_total"].values()) == 10
    assert after["signdigits_jobs_deleted_total"][()] == before[
        "signdigits_jobs_deleted_total"][()] + 1
    assert sum(_rows(after).values()) == 0  # the gauge shows what is there now: nothing
    assert sum(after["signdigits_jobs"].values()) == 0

    with serving(web.settings) as restarted:
        assert _counters(_scrape(restarted), types) == now
