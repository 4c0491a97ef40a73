"""The job page's panels agree at every moment a person can see, in a real browser
(Debian's Chromium, Playwright) on a real stack: the header's counts, the charts and the
labels' figures, recorded after every change the page makes to what it shows, always
count the same images while the job runs.

They had disagreed mid-run: the header was drawn as the stream's event came, the charts
once the batches' rows were fetched after it, and the labels' figures were read again at
most every 10 s.

The worker holds batches 1 and 2 (``SIGNDIGITS_TEST_HOLD_BATCHES``) until the test lets
each go, so the page sees the job's figures change twice while it runs.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import copy_sample
from tests.holds import BatchHolds
from tests.test_web_browser import DONE
from tests.web_server import desktop_page, held_site

# After every change to the page (a MutationObserver's callback runs once the script
# that changed it has finished: what the browser paints next), what the three panels say.
RECORD = """
window.seen = [];
new MutationObserver(() => {
  const text = id => (document.getElementById(id) || {}).textContent || "";
  const bars = [...document.querySelectorAll("#digits .col")].reduce(
    (n, c) => n + Number(c.firstElementChild.textContent), 0);
  const labels = document.getElementById("labels");
  const now = {counts: text("counts"), bars,
               labels: labels && !labels.hidden ? text("labels-summary") : ""};
  const last = window.seen[window.seen.length - 1];
  if (!last || JSON.stringify(last) !== JSON.stringify(now)) window.seen.push(now);
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
"""


@pytest.fixture(scope="module")
def site(redis_url, tmp_path_factory, dataset):
    with held_site(redis_url, tmp_path_factory.mktemp("job-figures"), concurrency=2,
                   holds="1,2", stall_seconds=3600) as opened:  # held != stalled
        yield opened


def _number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else 0


def _figures(seen: dict) -> dict:
    """The header's and the labels' counts as a person reads them."""
    header = re.match(r"(\d+) / (\d+) images: (\d+) classified", seen["counts"])
    assert header, seen
    return {"read": int(header.group(1)), "total": int(header.group(2)),
            "classified": int(header.group(3)), "bars": seen["bars"],
            "counted": _number(r"of (\d+) labelled photos? right", seen["labels"]),
            "several": _number(r"(\d+) of several hands", seen["labels"]),
            "unread": _number(r"(\d+) not read yet", seen["labels"])}


def test_the_header_charts_and_labels_agree_while_the_job_runs(site, dataset, tmp_path):
    client, _ = site
    holds = BatchHolds(client.stack.broker_url)
    folder = tmp_path / "agree"
    copy_sample(dataset, folder, per_digit=3, seed=71)  # 30 labelled photos: batches 0-2
    job = client.post("/api/jobs", json={"folder": str(folder), "batch_size": 10}).json()
    holds.wait_held(job["id"], 2)  # batch 0 is stored: its process took batch 2 after it
    holds.wait_held(job["id"], 1)
    with desktop_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.add_init_script(RECORD)
        page.goto(f"{client.base_url}/jobs/{job['id']}")
        page.wait_for_selector("#counts:text-matches('^10 / 30 images')")
        holds.release(job["id"], 1)
        page.wait_for_selector("#counts:text-matches('^20 / 30 images')")
        holds.release(job["id"], 2)
        page.wait_for_selector("#state:text-is('done')", timeout=DONE)
        page.wait_for_selector("#counts:text-matches('^30 / 30 images')")
        seen = page.evaluate("window.seen")
        assert not errors, errors
    shown = [_figures(s) for s in seen if s["counts"] and s["labels"]]
    # Every moment shown: the labels' unread photos are the header's unread ones, the
    # labels count every classified photo, and the digits chart holds each once (no
    # review yet: a one-hand photo's bar is the model's digit or "no hand").
    wrong = [f for f in shown if f["total"] - f["read"] != f["unread"]
             or f["classified"] != f["counted"] + f["several"]
             or f["bars"] != f["counted"]]
    assert not wrong, wrong
    assert {f["read"] for f in shown} >= {10, 20, 30}, shown  # it was watched running
