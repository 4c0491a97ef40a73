"""How the pages hold up to what people and folders name things, judged in a real browser
(Debian's Chromium, Playwright) on a real stack: a 180-character job name and a
240-character file name without spaces keep the page inside the window; a bidirectional
override in a name cannot reverse the job id beside it; an unreadable file's tile and
dialog say its error without asking for a picture; a cancelled job's bar shows its
cancelled images apart; a browser's 404 is a page; the words agree with their numbers.

The worker holds batch 1 of every job (``SIGNDIGITS_TEST_HOLD_BATCHES``): the cancelled
job is cancelled while it surely has images left.
"""

from __future__ import annotations

import html
import shutil
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import copy_sample
from tests.holds import BatchHolds
from tests.test_web_browser import DONE
from tests.web_server import desktop_page, held_site, sse_until_done

LONG_NAME = ("session_2024-05-01_" + "classroomB_webcam_left_" * 10)[:180]
LONG_FILE = ("unreadable_" + "webcam_left_classroomB_" * 12)[:236] + ".jpg"  # 240
RTL_NAME = "x \u202e rtl"
# The page is no wider than the window (a long name once made it 2,601 px at 1,280).
FITS = "document.documentElement.scrollWidth <= window.innerWidth"
# Whether an element's text is drawn left to right: its first character left of its last
# (an unisolated U+202E before it draws a job id backwards).
LEFT_TO_RIGHT = """e => { const text = e.firstChild, range = document.createRange();
  const at = i => { range.setStart(text, i); range.setEnd(text, i + 1);
                    return range.getBoundingClientRect().left; };
  return at(0) < at(text.length - 1); }"""


@pytest.fixture(scope="module")
def site(redis_url, tmp_path_factory, dataset):
    with held_site(redis_url, tmp_path_factory.mktemp("display"), concurrency=1,
                   holds="1") as opened:
        yield opened


@pytest.fixture(scope="module")
def jobs(site, dataset):
    """``named``: photos in 3/ and 5/, one outside the digit folders, one unreadable file
    in 3/ with a 240-character name, none below its threshold (0), renamed to 180 characters.
    ``cancelled``: 3 photos a batch each, cancelled while batch 1 is held (threshold 1:
    what was read is below it)."""
    client, tmp = site
    folder = tmp / "named"
    copy_sample(dataset, folder, per_digit=1, seed=71)
    for digit in [d for d in range(10) if d not in (3, 5)]:
        shutil.rmtree(folder / str(digit))
    shutil.copyfile(next((folder / "3").iterdir()), folder / "loose.jpg")
    (folder / "3" / LONG_FILE).write_bytes(b"not a picture")
    named = client.post("/api/jobs", json={"folder": str(folder), "threshold": 0.0}).json()
    sse_until_done(client, named["id"])
    renamed = client.patch(f"/api/jobs/{named['id']}", json={"name": LONG_NAME})
    assert renamed.status_code == 200 and renamed.json()["name"] == LONG_NAME, renamed.text

    folder = tmp / "to-cancel"
    copy_sample(dataset, folder, per_digit=1, seed=72)
    for digit in range(3, 10):
        shutil.rmtree(folder / str(digit))
    answer = client.post("/api/jobs", json={"folder": str(folder), "batch_size": 1,
                                            "threshold": 1.0, "name": "cancelled one"})
    cancelled = answer.json()
    holds = BatchHolds(client.stack.broker_url)
    holds.wait_held(cancelled["id"], 1)
    assert client.post(f"/api/jobs/{cancelled['id']}/cancel").status_code == 200
    holds.release(cancelled["id"], 1)
    sse_until_done(client, cancelled["id"])
    return {"named": client.get(f"/api/jobs/{named['id']}").json(),
            "cancelled": client.get(f"/api/jobs/{cancelled['id']}").json()}


@pytest.fixture
def page(site):
    """A fresh page with every console error, failed request and script error noted."""
    with desktop_page() as opened:
        opened.failures = []
        opened.requests = []
        opened.on("console", lambda m: m.type == "error" and opened.failures.append(m.text))
        opened.on("pageerror", lambda error: opened.failures.append(str(error)))
        opened.on("request", lambda r: opened.requests.append(r.url))
        yield opened


def _shoot(page, name: str, tmp: Path) -> None:
    """What the window shows, to look at: beside the test's files (not docs/, whose
    pictures are the other tests')."""
    target = tmp / "shots" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))


def test_long_names_stay_inside_the_window(site, jobs, page):
    client, tmp = site
    job = jobs["named"]
    page.goto(f"{client.base_url}/")
    row = f"#job-{job['id']}"
    page.wait_for_selector(f"{row} td.state:text-is('done with errors')", timeout=DONE)
    assert page.inner_text(f"{row} .job-name") == LONG_NAME
    assert page.evaluate(FITS), page.evaluate("document.documentElement.scrollWidth")
    for control in (".delete", ".rename", "td.state", ".bar"):  # none pushed off-screen
        box = page.locator(f"{row} {control}").bounding_box()
        assert box and box["x"] + box["width"] <= page.viewport_size["width"], control
    _shoot(page, "web-jobs-long-name.png", tmp)

    page.goto(f"{client.base_url}/jobs/{job['id']}")
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 4")
    assert page.evaluate(FITS), page.evaluate("document.documentElement.scrollWidth")
    card = page.locator("#job").bounding_box()
    heading = page.eval_on_selector("#job h2", "h => h.getBoundingClientRect().right")
    assert heading <= card["x"] + card["width"]  # the heading stays in its card
    assert page.eval_on_selector("#job h2", "h => h.scrollWidth <= h.clientWidth")
    _shoot(page, "web-job-long-name.png", tmp)

    page.click("#grid .tile.error")
    page.wait_for_selector("#detail[open]")
    assert page.inner_text("#detail-path") == "3/" + LONG_FILE
    fits = page.eval_on_selector("#detail-path", "h => h.scrollWidth <= h.clientWidth")
    dialog = page.locator("#detail").bounding_box()
    assert fits and dialog["x"] + dialog["width"] <= page.viewport_size["width"]


def test_an_unreadable_file_shows_its_error_and_asks_for_no_picture(site, jobs, page):
    client, tmp = site
    job = jobs["named"]
    items = client.get(f"/api/jobs/{job['id']}/images").json()["items"]
    broken = next(i for i in items if i["status"] == "error")
    page.goto(f"{client.base_url}/jobs/{job['id']}")
    page.wait_for_function("[...document.querySelectorAll('#grid .tile img')].length === 3 && "
                           "[...document.querySelectorAll('#grid .tile img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    tile = f"#grid .tile[data-image='{broken['id']}']"
    assert page.locator(f"{tile} img").count() == 0
    assert page.inner_text(f"{tile} .unreadable") == broken["error"]
    assert page.get_attribute(tile, "title") == "3/" + LONG_FILE  # the whole name, on hover
    # The label (the file's name) stays on its own line under the placeholder, clear of
    # the box that selects the tile.
    pick = page.locator(f"{tile} .pick").bounding_box()
    label = page.locator(f"{tile} .label").bounding_box()
    assert label["y"] >= pick["y"] + pick["height"]
    assert page.eval_on_selector(f"{tile} .label", "l => l.offsetHeight < 2 * 16 + 4")

    page.click(tile)
    page.wait_for_selector("#detail[open]")
    assert page.is_hidden("#detail-picture") and page.is_hidden("#detail-crop")
    assert page.inner_text("#detail-summary") == \
        f"This file could not be read: {broken['error']}"
    _shoot(page, "web-job-unreadable.png", tmp)
    page.keyboard.press("Escape")
    asked = [u for u in page.requests if f"/api/images/{broken['id']}/" in u]
    assert asked == [], asked
    # No 422 for its picture, and no favicon.ico 404: the console stays clean.
    assert page.failures == [], page.failures


def test_words_agree_with_their_numbers(site, jobs, page):
    client, _ = site
    named, cancelled = jobs["named"], jobs["cancelled"]
    page.goto(f"{client.base_url}/jobs/{named['id']}")
    page.wait_for_selector("#labels:not([hidden])")
    summary = page.inner_text("#labels-summary")
    assert "; 1 photo outside folders 0-9." in summary, summary
    assert "1 unreadable" in summary
    assert named["below_threshold"] == 0
    assert page.is_hidden("#review-link")  # nothing to review: no link to an empty page
    assert page.inner_text("#review-none") == "no images below the threshold to review"
    page.wait_for_selector("#counts:has-text('1 error')")
    assert page.inner_text("#counts").endswith("1 error") or ", 1 error," in \
        page.inner_text("#counts")

    # Its rate counts the rows read, until the last one read: not the rows the cancel
    # marked at once (they had made a cancelled job read hundreds a second).
    read_rows = [r for r in client.stack.rows(cancelled["id"]) if r.status in ("done", "error")]
    last = max(r.finished_at for r in read_rows)
    created = datetime.fromisoformat(cancelled["created_at"]).replace(tzinfo=None)
    assert cancelled["images_per_second"] == pytest.approx(
        len(read_rows) / (last.replace(tzinfo=None) - created).total_seconds(), abs=0.01)
    status = client.stack.cli("status", cancelled["id"])
    assert f"{len(read_rows)}/{cancelled['total_images']}, {cancelled['cancelled']} " \
        "cancelled" in " ".join(status.stdout.split()), status.stdout

    page.goto(f"{client.base_url}/jobs/{cancelled['id']}")
    page.wait_for_selector("#counts:has-text('cancelled')")
    page.wait_for_selector("#labels:not([hidden])")  # folders 0-2: labelled photos
    assert f"not counted: {cancelled['cancelled']} cancelled" in page.inner_text(
        "#labels-summary")  # not "not read yet": nothing will read them
    read = cancelled["done"] + cancelled["errors"]
    assert cancelled["state"] == "cancelled" and cancelled["cancelled"] >= 1, cancelled
    assert page.inner_text("#counts").startswith(
        f"{read} / {cancelled['total_images']} images read, {cancelled['cancelled']} "
        "cancelled: ")
    # The bar: what was read in green, the cancelled share striped, never all green
    # (waited for: the widths slide into place).
    share = cancelled["cancelled"] / cancelled["total_images"]
    page.wait_for_function("""share => {
      const width = id => document.getElementById(id).getBoundingClientRect().width;
      const bar = document.querySelector('#job .bar').getBoundingClientRect().width;
      return Math.abs(width('progress-cancelled') - share * bar) <= 2 &&
             Math.abs(width('progress') - (1 - share) * bar) <= 2; }""", arg=share)
    assert "repeating-linear-gradient" in page.eval_on_selector(
        "#progress-cancelled", "e => getComputedStyle(e).backgroundImage")
    assert page.inner_text("#review-link") == f"review the {cancelled['below_threshold']} " \
        f"uncertain image{'' if cancelled['below_threshold'] == 1 else 's'}"
    page.goto(f"{client.base_url}/")
    row = f"#job-{cancelled['id']}"
    page.wait_for_selector(f"{row} .muted:has-text('cancelled')")
    assert page.inner_text(f"{row} .muted") == (
        f"{read} / {cancelled['total_images']}, {cancelled['cancelled']} cancelled")
    assert "repeating-linear-gradient" in page.eval_on_selector(
        f"{row} .fill.cancelled", "e => getComputedStyle(e).backgroundImage")
    page.wait_for_function("""([row, share]) => {  // the list's bar split the same way
      const width = part => document.querySelector(`${row} .fill.${part}`)
                                    .getBoundingClientRect().width;
      const bar = document.querySelector(`${row} .bar`).getBoundingClientRect().width;
      return Math.abs(width('cancelled') - share * bar) <= 2 &&
             Math.abs(width('read') - (1 - share) * bar) <= 2; }""", arg=[row, share])

    page.goto(f"{client.base_url}/jobs/{named['id']}/review")
    assert page.inner_text("#review-job") == LONG_NAME
    assert page.inner_text("#review .job-id") == named["id"][:8]
    assert page.evaluate(FITS)


def test_a_bidirectional_override_in_an_old_name_cannot_reverse_the_id(site, jobs, page):
    """The API refuses such names now (test_web_daily.py); a row named before still shows
    its id left to right, and so does a file named with one."""
    from sqlalchemy import update

    from signdigits.db.models import Job

    client, tmp = site
    job = jobs["cancelled"]
    with client.stack.sessions()() as session, session.begin():
        session.execute(update(Job).where(Job.id == job["id"]).values(name=RTL_NAME))
    page.goto(f"{client.base_url}/jobs/{job['id']}")
    assert page.inner_text("#job-name") == RTL_NAME
    assert page.eval_on_selector("#job .job-id", LEFT_TO_RIGHT)
    name = page.locator("#job-name").bounding_box()
    assert page.locator("#job .job-id").bounding_box()["x"] >= name["x"] + name["width"]
    _shoot(page, "web-job-rtl-name.png", tmp)
    page.goto(f"{client.base_url}/jobs/{job['id']}/review")
    assert page.eval_on_selector("#review .job-id", LEFT_TO_RIGHT)
    page.goto(f"{client.base_url}/")
    page.wait_for_selector(f"#job-{job['id']} .job-id")
    assert page.eval_on_selector(f"#job-{job['id']} .job-id", LEFT_TO_RIGHT)


def test_a_browser_gets_a_not_found_page_and_a_program_json(site, jobs, page):
    client, tmp = site
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path, said, back in (("/jobs/nope", "No job 'nope'", "/"),
                             ("/jobs/nope/review", "No job 'nope'", "/"),
                             ("/models/nope", "No registered model 'nope'", "/models"),
                             ("/no-such-page", "There is no page at /no-such-page", "/")):
        answer = client.get(path, headers=browser)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith(
            "text/html"), (path, answer.text)
        shown = html.unescape(answer.text)
        assert said in shown and f'<a href="{back}">Back to' in shown, path
        assert client.get(path).json()["detail"]  # without text/html: JSON, as before
    for path in ("/api/jobs/nope", "/api/models/nope", "/api/images/0/thumbnail"):
        answer = client.get(path, headers=browser)
        assert answer.status_code == 404 and answer.json()["detail"], path  # the API: JSON

    page.goto(f"{client.base_url}/jobs/nope")
    assert page.inner_text("#not-found h2") == "Not found"
    assert page.inner_text("#not-found .not-found").startswith("No job 'nope'")
    _shoot(page, "web-not-found.png", tmp)
    page.click("#not-found a")
    page.wait_for_selector(f"#job-{jobs['named']['id']}")
    assert page.get_attribute("link[rel=icon]", "href").startswith("data:image/svg+xml,")


def test_cancel_asks_first_naming_the_job(site, dataset, page, tmp_path):
    """Cancelling cannot be undone: the button asks first (as Promote, Roll back and Delete
    do), naming the job and what cancelling does; declined, the job runs on."""
    client, tmp = site
    folder = tmp_path / "to-ask"
    copy_sample(dataset, folder, per_digit=1, seed=73)
    for digit in range(3, 10):
        shutil.rmtree(folder / str(digit))
    # Without the session's cookies: a page the client fetched earlier left it a CSRF
    # cookie, and a POST carrying that cookie must carry its token too.
    answer = httpx.post(f"{client.base_url}/api/jobs", timeout=60, json={
        "folder": str(folder), "batch_size": 1, "threshold": 1.0, "name": "ask me first"})
    assert answer.status_code < 300, answer.text
    job = answer.json()
    holds = BatchHolds(client.stack.broker_url)
    holds.wait_held(job["id"], 1)
    try:
        page.goto(f"{client.base_url}/jobs/{job['id']}")
        page.wait_for_selector("#cancel:enabled")
        asked: list[str] = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
        page.click("#cancel")
        assert asked == [f'Cancel the job "ask me first" ({job["id"][:8]})? Its pending images '
                         "will not be read; the results so far stay. This cannot be undone."]
        assert not [url for url in page.requests if url.endswith("/cancel")]  # declined
        assert client.get(f"/api/jobs/{job['id']}").json()["state"] != "cancelled"
        assert page.is_enabled("#cancel")

        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        page.click("#cancel")
        page.wait_for_selector("#state:text-is('cancelled')", timeout=30_000)
        assert len(asked) == 2
        assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "cancelled"
        _shoot(page, "web-job-cancelled.png", tmp)
    finally:
        holds.release(job["id"], 1)
    sse_until_done(client, job["id"])
    assert page.failures == [], page.failures
