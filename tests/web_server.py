"""A real uvicorn server for the web tests, in a thread of the test process, on a free port."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import httpx

from tests.waiting import wait_until


@contextmanager
def serving(settings, *, timeout: float = 30):
    """Yield an ``httpx.Client`` on a real uvicorn serving ``create_app(settings)``."""
    import uvicorn

    from signdigits.db.migrate import upgrade
    from signdigits.stack.valkey import free_port
    from signdigits.web.app import create_app

    upgrade(settings.database_url)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    def started() -> bool:
        if not thread.is_alive():
            raise RuntimeError("uvicorn exited at start")
        return server.started

    wait_until(started, timeout=timeout, interval=0.05, message="uvicorn to start")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            client.settings = settings
            yield client
    finally:
        server.should_exit = True
        thread.join(30)


def sse_until_done(client: httpx.Client, job_id: str, timeout: float = 240) -> list[tuple]:
    """The job's events as (name, data) until its ``done`` event; fails past ``timeout``."""
    import json

    events, name = [], None
    with client.stream("GET", f"/api/jobs/{job_id}/events",
                       timeout=httpx.Timeout(timeout, read=timeout)) as response:
        assert response.status_code == 200, response.read()
        deadline = time.monotonic() + timeout
        for line in response.iter_lines():
            assert time.monotonic() < deadline, f"no done event in {timeout}s: {events}"
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                if name == "done":
                    return events
    raise AssertionError(f"the stream ended without a done event: {events}")


def web_stack(request, redis_url: str, tmp_path_factory):
    """A worker and a web server on the database ``request.param`` names (``sqlite`` or
    ``postgresql``): the body of the web test modules' module-scoped ``web`` fixtures."""
    from signdigits.config.settings import Settings
    from tests.conftest import Stack

    tmp = tmp_path_factory.mktemp("web")
    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp / 'results.db'}"
    else:
        database_url = request.getfixturevalue("postgres_url")
    stack = Stack(redis_url, database_url, tmp, upload_dir=str(tmp / "uploads"))
    stack.start_worker(concurrency=1)
    settings = Settings(broker_url=stack.broker_url, database_url=database_url,
                        upload_dir=tmp / "uploads")
    try:
        with serving(settings) as client:
            client.stack, client.tmp = stack, tmp
            yield client
    finally:
        stack.stop()
