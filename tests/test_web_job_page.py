"""The job page in a real browser (Debian's Chromium, Playwright) on a real stack, judged by
what a person sees: the grid and charts filling while the job runs, many tiles given one
answer, a review shown and corrected in the image dialog, the answers checked against the
folder labels.

The worker holds batches 1 and 2 of every job (``SIGNDIGITS_TEST_HOLD_BATCHES``) until
the test lets them go: the live test sees the page while the job is surely running; the
other test lets them go at once.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import copy_sample
from tests.holds import BatchHolds
from tests.test_web_browser import DONE, _shots
from tests.web_server import desktop_page, held_site, sse_until_done

DIGITS_SUM = ("[...document.querySelectorAll('#digits .col')].filter(c => "
              "/^[0-9]$/.test(c.lastElementChild.textContent)).reduce((n, c) => "
              "n + Number(c.firstElementChild.textContent), 0)")
# The first four tiles' boxes, ticked or not, in the grid's order.
PICKS = "[...document.querySelectorAll('#grid .tile .pick')].slice(0, 4).map(p => p.checked)"
READ_TILES = ("[...document.querySelectorAll('#grid .tile .label')]"
              ".filter(l => l.textContent !== 'pending').length")


def _shoot(page, name: str, tmp: Path, *, at: str | None = None) -> None:
    """What the window shows (scrolled to ``at``): the grid's 60 tiles, shot whole, made
    the pictures a megabyte or more."""
    if at:
        page.eval_on_selector(at, "e => e.scrollIntoView({block: 'start'})")
    target = (_shots() or tmp) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target))


@pytest.fixture(scope="module")
def site(redis_url, tmp_path_factory, dataset):
    with held_site(redis_url, tmp_path_factory.mktemp("job-page"), concurrency=2,
                   holds="1,2", stall_seconds=3600) as opened:  # held != stalled
        yield opened


@pytest.fixture(scope="module")
def page(site):
    with desktop_page() as opened:
        errors: list[str] = []
        opened.on("pageerror", lambda error: errors.append(str(error)))
        yield opened
        assert not errors, errors  # no script failed on the way


def test_the_grid_and_charts_fill_while_the_job_runs(site, page, dataset, tmp_path):
    client, tmp = site
    holds = BatchHolds(client.stack.broker_url)
    folder = tmp_path / "live"
    copy_sample(dataset, folder, per_digit=1, seed=61)
    (folder / "extra").mkdir()
    copy_sample(dataset, folder / "extra", per_digit=1, seed=62)  # 20 images: batches 0-2
    job = client.post("/api/jobs", json={"folder": str(folder), "batch_size": 8}).json()
    holds.wait_held(job["id"], 2)  # batch 0 is stored: its process took batch 2 after it
    holds.wait_held(job["id"], 1)
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{client.base_url}/jobs/{job['id']}")
    page.wait_for_selector("#state:text-is('running')")
    page.wait_for_function(f"{READ_TILES} === 8 && {DIGITS_SUM} === 8")
    assert page.eval_on_selector_all("#grid .tile", "t => t.length") == 20
    shown = len(requests)

    holds.release(job["id"], 1)  # batch 1 arrives while the page is open
    page.wait_for_function(f"{READ_TILES} === 16 && {DIGITS_SUM} === 16")
    assert page.inner_text("#state") == "running"  # batch 2 is still held
    assert page.evaluate("window.liveUpdates.batches") == 1
    assert page.evaluate("window.liveUpdates.rows") == 8
    # Lowest confidence first: the 16 read tiles, then the 4 pending ones.
    labels = page.eval_on_selector_all("#grid .tile .label", "l => l.map(x => x.textContent)")
    assert labels[16:] == ["pending"] * 4 and "pending" not in labels[:16]
    # One request for the batch's rows (and their 8 thumbnails), nothing re-read.
    fetched = [u for u in requests[shown:] if "/api/" in u and "/thumbnail" not in u]
    assert len(fetched) == 1 and "batch=1" in fetched[0], fetched
    _shoot(page, "web-job-live.png", tmp)

    holds.release(job["id"], 2)
    page.wait_for_selector("#state:text-is('done')", timeout=DONE)
    page.wait_for_function(f"{READ_TILES} === 20 && {DIGITS_SUM} === 20")
    stats = client.get(f"/api/jobs/{job['id']}/stats").json()
    assert page.evaluate(DIGITS_SUM) == sum(stats["digits"])


def test_labels_bulk_review_and_the_dialog(site, page, dataset, tmp_path):
    client, tmp = site
    folder = tmp_path / "labelled"
    truth = copy_sample(dataset, folder, per_digit=6, seed=63)  # 60 photos in 0/ ... 9/
    job = client.post("/api/jobs", json={"folder": str(folder), "threshold": 1.0}).json()
    for held in (1, 2):  # the worker holds these batches of every job: not this one's
        BatchHolds(client.stack.broker_url).release(job["id"], held)
    sse_until_done(client, job["id"])
    items = client.get(f"/api/jobs/{job['id']}/images", params={"limit": 100}).json()["items"]
    right = sum(i["digit"] == truth[i["path"]] for i in items)
    page.goto(f"{client.base_url}/jobs/{job['id']}")
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 60")

    # The answers checked against the folders: accuracy, the matrix, the slider.
    page.wait_for_selector("#labels:not([hidden])", timeout=5000)
    assert page.inner_text("#labels-summary").startswith(
        f"Accuracy {100 * right / 60:.1f}%: {right} of 60 labelled photos right")
    threes = sum(i["digit"] == 3 for i in items if truth[i["path"]] == 3)
    assert page.inner_text("#confusion td[data-label='3'][data-answer='3']") == str(threes)
    assert page.inner_text("#threshold-value") == "1.000"
    assert "0 of 60 kept" in page.inner_text("#threshold-figures")
    page.eval_on_selector("#threshold-slider", "s => { s.value = '0.5'; "
                          "s.dispatchEvent(new Event('input')); }")
    kept = sum(i["confidence"] >= 0.5 for i in items)
    assert page.inner_text("#threshold-figures").startswith(f"at 0.500: {kept} of 60 kept")
    _shoot(page, "web-job-labels.png", tmp, at="#labels")
    page.click("#confusion td[data-label='3'][data-answer='3']")
    page.wait_for_function(f"document.querySelectorAll('#grid .tile').length === {threes}")
    titles = page.eval_on_selector_all("#grid .tile", "t => t.map(x => x.title)")
    assert all(t.startswith("3/") for t in titles)
    page.click("#filter-label-clear")
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 60")

    # Three tiles by click and shift-click, given the digit 7 in one action.
    page.click("#grid .tile >> nth=0 >> .pick")
    page.click("#grid .tile >> nth=2 >> .pick", modifiers=["Shift"])
    assert page.inner_text("#selection-count") == "3 images selected"
    # Every box agrees with the selection, the shift-clicked one too (it was once left
    # unticked, and clicking it again took it out of the selection while still unticked).
    assert page.evaluate(PICKS) == [True, True, True, False]
    page.click("#grid .tile >> nth=2 >> .pick")
    page.wait_for_selector("#selection-count:text-is('2 images selected')", timeout=5000)
    assert page.evaluate(PICKS) == [True, True, False, False]
    page.click("#grid .tile >> nth=2 >> .pick")
    page.wait_for_selector("#selection-count:text-is('3 images selected')", timeout=5000)
    assert page.is_checked("#grid .tile >> nth=2 >> .pick")
    assert page.evaluate(PICKS) == [True, True, True, False]
    assert page.eval_on_selector_all("#grid .tile", "t => t.slice(0, 4).map(x => "
                                     "x.classList.contains('selected'))") == [True] * 3 + [False]
    picked = page.eval_on_selector_all("#grid .tile.selected", "t => t.map(x => x.image)")
    _shoot(page, "web-job-select.png", tmp, at="#selection")
    page.click(".bulk-digit[data-digit='7']")
    page.wait_for_selector("#bulk-message:text-is('3 images: digit 7')")
    for image in picked:
        model = "no hand" if image["digit"] is None else str(image["digit"])
        page.wait_for_selector(f"#grid .tile[data-image='{image['id']}'] "
                               f".label:text-is('7 (model {model})')")

    # Everything not reviewed yet (57, over the 50 that ask first) marked unusable.
    page.select_option("#filter-reviewed", "false")
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 57")
    page.click("#select-all")
    page.wait_for_selector("#selection-count:text-is('All 57 images under this filter selected')")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click("#bulk-unusable")
    page.wait_for_selector("#bulk-message:text-is('57 images: unusable')")
    assert asked == ["57 images: mark them unusable?"]
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 0")

    # The dialog of an unusable photo says so before the model's answer; a key corrects it.
    page.select_option("#filter-reviewed", "true")
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 60")
    target = next(i for i in items if i["id"] == page.eval_on_selector_all(
        "#grid .tile", "t => t.map(x => x.image).find(i => i.final_digits === '').id"))
    page.click(f"#grid .tile[data-image='{target['id']}'] img")
    page.wait_for_selector("#detail[open]")
    assert page.inner_text("#detail-review") == "Reviewed: unusable: no digit shown. " \
                                                "The model's answer below."
    assert page.inner_text("#detail-summary").startswith("the model said ")
    page.keyboard.press("5")
    page.wait_for_selector("#detail-review:text-is('Reviewed: digit 5. The model\\'s answer "
                           "below.')")
    model = "no hand" if target["digit"] is None else str(target["digit"])
    page.wait_for_selector(f"#grid .tile[data-image='{target['id']}'] "
                           f".label:text-is('5 (model {model})')")
    _shoot(page, "web-job-image-reviewed.png", tmp)
    page.keyboard.press("Escape")
    # The charts count the final answers: 3 sevens, one 5, the other 56 unusable.
    page.wait_for_function(f"{DIGITS_SUM} === 4")
    assert page.inner_text("#digits .col:has(span:text-is('unusable')) span >> nth=0") == "56"
    summary = page.inner_text("#labels-summary")
    assert "with the reviews applied" in summary


MARKS = "[...document.querySelectorAll('#histogram .threshold')].map(l => [l.title, " \
        "parseFloat(l.style.left)])"
MODELS = "[...document.querySelectorAll('#job-models li')].map(l => l.textContent)"


def test_a_model_promoted_while_the_page_is_open_shows_with_its_threshold(site, page, dataset,
                                                                         tmp_path):
    """The job's first batch read by another model than the one it was submitted with (a
    promote while it ran), each flagging by its own default threshold: the page names
    both models, the images each read and its threshold, marks both thresholds on the
    histogram and the slider, and says so on the review page; a job of one model reads
    as it always did."""
    from tests.models import read_by_another

    client, tmp = site
    holds = BatchHolds(client.stack.broker_url)
    folder = tmp_path / "promoted"
    copy_sample(dataset, folder, per_digit=2, seed=64)  # 20 photos: batches 0-2
    job = client.post("/api/jobs", json={"folder": str(folder), "batch_size": 8}).json()
    submitted, threshold = job["model_version"], job["threshold"]
    assert job["threshold_from_model"] and threshold != 0.6
    holds.wait_held(job["id"], 2)
    holds.wait_held(job["id"], 1)
    page.goto(f"{client.base_url}/jobs/{job['id']}")
    page.wait_for_selector("#state:text-is('running')")
    assert page.inner_text("#job-model") == (f"folder {folder}, threshold {threshold}, "
                                             f"model {submitted}")
    assert page.is_hidden("#job-models")
    # The histogram is drawn from its own request, after the state: wait for its mark.
    page.wait_for_selector("#histogram .threshold")
    assert page.evaluate(MARKS) == [["threshold", threshold * 100]]
    # One threshold: the bins wholly below it flagged, the one it falls inside striped.
    inside = int(round(threshold * 20, 6) % 1 != 0)
    assert page.eval_on_selector_all("#histogram .col.low", "c => c.length") == math.floor(
        round(threshold * 20, 6))
    assert page.eval_on_selector_all("#histogram .col.some", "c => c.length") == inside

    later = "c3" * 8
    with read_by_another(client.stack.sessions(), job["id"], {0: (later, 0.6)}):
        holds.release(job["id"], 1)
        holds.release(job["id"], 2)
        page.wait_for_selector("#state:text-is('done')", timeout=DONE)
        page.wait_for_selector("#job-models li >> nth=1")
        said = (f"submitted with model {submitted}; read by 2 models (a model was promoted "
                "after it was submitted), each flagging by its own default threshold:")
        read = [f"{submitted}: 12 images, threshold {threshold}",
                f"{later}: 8 images, threshold 0.6"]
        assert page.inner_text("#job-model-text") == said
        assert page.evaluate(MODELS) == read
        page.wait_for_function(f"({MARKS}).length == 2")
        marks = page.evaluate(MARKS)
        assert [title for title, _ in marks] == [f"threshold 0.6 (model {later})",
                                                 f"threshold {threshold} (model {submitted})"]
        assert [round(left, 6) for _, left in marks] == [60, round(threshold * 100, 6)]
        assert page.inner_text("#histogram-marks") == f"(thresholds 0.6, {threshold} marked)"
        # Below 0.6 every model flags; from there to the higher threshold only one
        # model, and the bin the higher one falls inside holds both kinds: striped.
        assert page.eval_on_selector_all("#histogram .col.low", "c => c.length") == 12
        assert page.eval_on_selector_all("#histogram .col.some", "c => c.length") == math.ceil(
            round(threshold * 20, 6)) - 12
        assert page.eval_on_selector_all("#threshold-marks option", "o => o.map(x => x.value)"
                                         ) == ["0.6", str(threshold)]
        page.wait_for_selector("#labels:not([hidden])")
        page.wait_for_function("document.getElementById('threshold-job').textContent"
                               ".startsWith('The thresholds applied')")
        assert page.inner_text("#threshold-job").startswith(
            f"The thresholds applied (0.6 by model {later}; {threshold} by model {submitted}): ")
        _shoot(page, "web-job-two-models.png", tmp)
        # Each photo's dialog names the model that read it and the threshold it applied.
        items = client.get(f"/api/jobs/{job['id']}/images", params={"limit": 50}).json()
        by_later = next(i for i in items["items"] if i["model_version"] == later)
        page.evaluate("id => openImage(id)", by_later)
        assert page.inner_text("#detail-model") == f"read by model {later}, flagged below 0.6"
        page.keyboard.press("Escape")

        # A page opened now draws it so from the start; the review page says it too.
        page.goto(f"{client.base_url}/jobs/{job['id']}")
        page.wait_for_selector("#job-models li >> nth=1")
        assert page.inner_text("#job-model-text") == said and page.evaluate(MODELS) == read
        page.goto(f"{client.base_url}/jobs/{job['id']}/review")
        assert page.inner_text("#review-thresholds") == (
            f"thresholds, each its model's default ({threshold} by model {submitted}; 0.6 by "
            f"model {later})")
        _shoot(page, "web-review-two-models.png", tmp)


@pytest.mark.slow
def test_a_2000_photo_job_page_while_it_runs(site, page, dataset, tmp_path):
    """The figures of docs/web-and-api.md: a 2,000-photo job watched from its start, the
    time each live update takes to draw and the requests the page makes a second
    (``scripts/test -m slow tests/test_web_job_page.py``; about a minute on 2 cores)."""
    import shutil
    import time

    from tests.figures import record

    client, tmp = site
    folder = tmp_path / "big"
    photos = sorted(p for p in dataset.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    for n in range(2000):
        source = photos[n % len(photos)]
        target = folder / source.parent.name / f"{n}_{source.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)  # copies: the web's walk keeps to its folder
    answer = client.post("/api/jobs", json={"folder": str(folder)})
    assert answer.status_code == 201, answer.text
    job = answer.json()
    for held in (1, 2):
        BatchHolds(client.stack.broker_url).release(job["id"], held)
    requests: list[tuple[float, str]] = []
    page.on("request", lambda r: requests.append((time.monotonic(), r.url)))
    page.goto(f"{client.base_url}/jobs/{job['id']}")
    started = time.monotonic()
    page.wait_for_selector("#state:text-is('done')", timeout=600_000)
    ended = time.monotonic()
    page.wait_for_function("document.querySelectorAll('#grid .tile').length === 60")
    live = page.evaluate("window.liveUpdates")
    stats = client.get(f"/api/jobs/{job['id']}/stats").json()
    assert page.evaluate(DIGITS_SUM) == sum(stats["digits"])
    during = [url for at, url in requests if started <= at <= ended]
    api_calls = [u for u in during if "/api/" in u and "/thumbnail" not in u]
    seconds = ended - started
    renders, updates = sorted(live["renders"]), sorted(live["updates"])
    figures = {
        "seconds running": round(seconds, 1), "live updates": len(renders),
        "rows patched": live["rows"],
        "draw ms median": round(renders[len(renders) // 2], 1) if renders else None,
        "draw ms max": round(renders[-1], 1) if renders else None,
        "event to drawn ms median": round(updates[len(updates) // 2], 1) if updates else None,
        "event to drawn ms max": round(updates[-1], 1) if updates else None,
        "API requests/s": round(len(api_calls) / seconds, 2),
        "all requests/s (thumbnails too)": round(len(during) / seconds, 2)}
    record("job page, 2,000-photo job", figures)
    print(figures)
    assert live["rows"] > 0
