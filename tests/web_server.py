"""A real uvicorn server for the web tests, in a thread of the test process, on a free port."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import httpx
import pytest

CHROMIUM = os.environ.get("SIGNDIGITS_TEST_CHROMIUM", "/usr/bin/chromium")


@contextmanager
def serving(settings, *, timeout: float = 30):
    """Yield an ``httpx.Client`` on a real uvicorn serving ``create_app(settings)``."""
    from signdigits.bench.web_thread import web_in_thread
    from signdigits.db.migrate import upgrade

    upgrade(settings.database_url)
    with web_in_thread(settings, timeout=timeout) as url, httpx.Client(base_url=url,
                                                                     timeout=60) as client:
        client.settings = settings
        yield client


@contextmanager
def held_site(redis_url: str, tmp, *, concurrency: int, holds: str, **settings):
    """A site over a SQLite database with its own worker, whose batches ``holds`` (as
    SIGNDIGITS_TEST_HOLD_BATCHES) wait to be released (tests.holds): yields (client, tmp),
    the client's ``stack`` the worker's."""
    from signdigits.config.settings import Settings
    from tests.conftest import Stack, require

    require(os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM} (scripts/test installs it)")
    stack = Stack(redis_url, f"sqlite:///{tmp / 'r.db'}", tmp)
    stack.start_worker(concurrency=concurrency, faults=True, SIGNDIGITS_TEST_HOLD_BATCHES=holds)
    try:
        with serving(Settings(broker_url=stack.broker_url, database_url=stack.database_url,
                              upload_dir=tmp / "uploads", **settings)) as client:
            client.stack = stack
            yield client, tmp
    finally:
        stack.stop()


def sse_until_done(client: httpx.Client, job_id: str, timeout: float = 240, *,
                   stored: bool = False) -> list[tuple]:
    """The job's events as (name, data) until its ``done`` event; fails past ``timeout``.
    ``stored``: with the job page's ``stats`` and ``stored`` events."""
    import json

    events, name = [], None
    with client.stream("GET", f"/api/jobs/{job_id}/events" + ("?stored=true" if stored else ""),
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


def save_screenshot(page, target) -> None:
    """A full-page screenshot at ``target``, in 256 colours: the docs show these (the
    README's among them), refreshed by ``SIGNDIGITS_SCREENSHOT_DIR=docs``, and a page's
    flat colours lose nothing visible at a fifth of the size."""
    import io

    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    shot.quantize(256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


@contextmanager
def desktop_page():
    """A page of Debian's Chromium under Playwright, 1200 x 900 (skipped without
    Playwright); the browser closed after."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium.new_context(viewport={"width": 1200, "height": 900}).new_page()
        finally:
            chromium.close()
