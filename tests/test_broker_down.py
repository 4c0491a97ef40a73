"""The web's reads of the broker (``GET /metrics``, ``GET /api/workers``) with the broker
down: the answer says so, after one connection attempt, not kombu's retries (which took
6 s on a refused connection)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.waiting import wait_until
from tests.web_server import serving

TOKEN = "scraper-token-0123456789"
AUTH = ("admin", "a-long-test-password")


def _settings(broker_port: int, tmp_path):
    from signdigits.config.settings import Settings

    return Settings(broker_url=f"redis://127.0.0.1:{broker_port}/0",
                    database_url=f"sqlite:///{tmp_path / 'results.db'}",
                    web_auth=":".join(AUTH), metrics_token=TOKEN)


def test_metrics_and_workers_say_a_broker_on_a_closed_port_is_down(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    from signdigits.stack.valkey import free_port

    with serving(_settings(free_port(), tmp_path)) as web:  # nothing listens there
        answer = web.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200, answer.text
        samples = {s.name: s.value for f in text_string_to_metric_families(answer.text)
                   for s in f.samples}
        assert samples["signdigits_broker_up"] == 0
        assert "signdigits_workers_online" not in samples
        assert "signdigits_jobs_deleted_total" in samples  # the database's still counted
        workers = web.get("/api/workers", auth=AUTH)
        assert workers.status_code == 503
        assert workers.json()["detail"] == ("the broker did not answer: the workers cannot "
                                            "be seen")


@contextmanager
def _hanging_up() -> Iterator[tuple[int, list[int]]]:
    """A port that accepts each connection and closes it at once, like a broker going
    away; yields (port, the client ports of the connections accepted, in order)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                connection, (_, port) = listener.accept()
            except OSError:
                return  # closed: the test is over
            accepted.append(port)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True, name="hanging-up")
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        listener.close()
        thread.join(5)


def test_a_page_tries_a_broker_that_hangs_up_once(tmp_path):
    """Counted, not timed: kombu tried the broker 3 times over 6 s for one page."""
    with _hanging_up() as (port, accepted), serving(_settings(port, tmp_path)) as web:
        assert web.get("/api/workers", auth=AUTH).status_code == 503
        # Connections are accepted in the order they were made: once this one is, every
        # attempt the page made is counted.
        with socket.create_connection(("127.0.0.1", port)) as marker:
            mine = marker.getsockname()[1]
            wait_until(lambda: mine in accepted, timeout=10, message="the marker accepted")
        assert accepted.index(mine) == 1, f"the page connected {accepted.index(mine)} times"


def test_predict_says_a_broker_on_a_closed_port_is_down(tmp_path):
    """``POST /api/predict`` with nothing listening at the broker's port: a 503 naming the
    broker and the refused connection in one line, and the next request the same (its
    waiting place was given back). Measured: 0.61-0.65 s, Celery's send retrying."""
    import io

    from PIL import Image

    from signdigits.stack.valkey import free_port

    photo = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 140, 200)).save(photo, "JPEG")
    port = free_port()
    with serving(_settings(port, tmp_path)) as web:  # nothing listens there
        for _ in range(2):
            answer = web.post("/api/predict", auth=AUTH,
                              files={"file": ("a.jpg", photo.getvalue())})
            assert answer.status_code == 503, answer.text
            detail = answer.json()["detail"]
            assert detail.startswith("broker unavailable: ") and "\n" not in detail, detail
            assert f"127.0.0.1:{port}" in detail and "refused" in detail, detail
