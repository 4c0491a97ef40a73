"""How long the review page keeps a person waiting between two photos.

On a copy of a SQLite results file (its reviews removed), Chromium reviews the latest
job's queue with Enter, each key as soon as the photo and the 64 x 64 view are shown, and
prints the time from a key to the next photo on screen. Nothing is written to the file
given. The web app runs in this process (uvicorn on a free loopback port, no broker);
Chromium is Debian's /usr/bin/chromium, driven by Playwright (the dev extra).

    .venv/bin/python -m signdigits.bench.review_page RESULTS.db
        (e.g. the loop.db of python -m signdigits.bench.review_loop)

Prints the page's counter, then the waits (here a job of 40 photos at threshold 0.9999)::

    33 of 33 reviewed
    33 images in 1.85 s; key to the next photo on screen: median 45 ms, max 126 ms
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# The photo and the 64 x 64 view both loaded: what a person waits for before answering.
READY = ("document.getElementById('review-photo').complete && "
         "document.getElementById('review-photo').naturalWidth > 0 && "
         "document.getElementById('review-preview').complete")


@contextmanager
def web_app(database_url: str, *, timeout: float = 30) -> Iterator[str]:
    """``signdigits.web.app.create_app`` on ``database_url`` under uvicorn, in a thread of
    this process on a free loopback port; its base URL. No broker: the page needs none."""
    from signdigits.bench.web_thread import web_in_thread
    from signdigits.config.settings import Settings
    from signdigits.db.migrate import upgrade

    settings = Settings(database_url=database_url, broker_url="redis://127.0.0.1:1/0")
    upgrade(settings.database_url)
    with web_in_thread(settings, timeout=timeout) as url:
        yield url


def get_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as exc:  # e.g. 404: the file holds no job
        sys.exit(f"error: GET {url}: {exc.code} {exc.read().decode()[:300]}")


def review_all(base_url: str, job: str, total: int) -> tuple[str, float, list[float]]:
    """Enter on each photo of the queue in Chromium: the counter, seconds, the waits."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{base_url}/jobs/{job}/review")
            page.wait_for_selector("#review-item:not([hidden])")
            page.wait_for_function(READY)
            waits, started = [], time.perf_counter()
            for n in range(total):
                shown = page.get_attribute("#review-item", "data-image")
                pressed = time.perf_counter()
                page.keyboard.press("Enter")
                if n < total - 1:
                    page.wait_for_function(
                        f"document.getElementById('review-item').dataset.image !== '{shown}'"
                        f" && {READY}")
                    waits.append(time.perf_counter() - pressed)
            page.wait_for_selector(f"#review[data-saved='{total}']")
            elapsed = time.perf_counter() - started
            return page.inner_text("#counter"), elapsed, waits
        finally:
            browser.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m signdigits.bench.review_page",
        description="Milliseconds from a key on the review page to the next photo on "
                    "screen, over the latest job's queue of a copy of RESULTS.db.")
    parser.add_argument("results", type=Path, metavar="RESULTS.db",
                        help="a SQLite results file (not changed: a copy is reviewed)")
    args = parser.parse_args(argv)
    if not args.results.is_file():
        parser.error(f"argument RESULTS.db: {args.results}: no such file")
    if not Path(CHROMIUM).exists():
        parser.error(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="signdigits-bench-review-"))
    try:
        copy = scratch / "r.db"
        shutil.copyfile(args.results, copy)
        try:
            with sqlite3.connect(copy) as connection:
                connection.execute("DELETE FROM reviews")
        except sqlite3.DatabaseError as exc:
            sys.exit(f"error: {args.results}: not a signdigits results file ({exc})")
        with web_app(f"sqlite:///{copy}") as base_url:
            job = get_json(f"{base_url}/api/jobs/latest")["id"]
            total = get_json(f"{base_url}/api/jobs/{job}/review")["total"]
            if total < 2:
                sys.exit(f"error: job {job} has {total} image(s) to review; need 2 or more")
            counter, elapsed, waits = review_all(base_url, job, total)
        print(counter)
        print(f"{total} images in {elapsed:.2f} s; key to the next photo on screen: median "
              f"{statistics.median(waits) * 1000:.0f} ms, max {max(waits) * 1000:.0f} ms")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
