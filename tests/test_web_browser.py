"""The pages in a real browser (Debian's Chromium, driven by Playwright) on a real stack.

Uploads a folder of real photos, watches the job reach done, filters the grid to a
digit, opens an image (the photo with its hand drawn, the square that was read); on /try
uploads a photo and reads the digit, then takes one with Chromium's fake camera (a video
made here from a real photo) and reads the digit again. tests/test_web_pictures.py
checks the drawing on /try itself, and its "No hand found".
Screenshots go to ``SIGNDIGITS_SCREENSHOT_DIR`` (``docs/`` when they are refreshed).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import Stack, copy_sample, require, sample_images
from tests.web_server import CHROMIUM, save_screenshot, serving

DONE = 120_000  # ms a page may take to show a finished job
# The annotated photo's caption: what its colours mean (serving/preview.py draw_hands).
HAND_COLOURS = "Hands in green: read at or above the threshold; in orange: below it."


def write_y4m(photo: Path, target: Path, *, frames: int = 10) -> None:
    """A 640 x 480 Y4M video of ``photo``: Chromium's fake camera plays it in a loop.

    The photo is centred on a white frame, 480 x 480, so the square the model crops
    from the camera's picture is the photo itself.
    """
    frame = Image.new("RGB", (640, 480), "white")
    frame.paste(Image.open(photo).convert("RGB").resize((480, 480)), (80, 0))
    y, cb, cr = (np.asarray(c) for c in frame.convert("YCbCr").split())
    half = [np.asarray(Image.fromarray(c).resize((320, 240), Image.Resampling.BILINEAR))
            for c in (cb, cr)]
    with target.open("wb") as out:
        out.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for _ in range(frames):
            out.write(b"FRAME\n" + y.tobytes() + half[0].tobytes() + half[1].tobytes())


@pytest.fixture(scope="module")
def site(redis_url, tmp_path_factory, dataset):
    from signdigits.config.settings import Settings

    require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (scripts/test installs it)")
    tmp = tmp_path_factory.mktemp("browser")
    stack = Stack(redis_url, f"sqlite:///{tmp / 'r.db'}", tmp)
    stack.start_worker(concurrency=2)
    settings = Settings(broker_url=stack.broker_url, database_url=stack.database_url,
                        upload_dir=tmp / "uploads")
    try:
        with serving(settings) as client:
            yield client, tmp
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser(site, dataset):
    playwright_api = pytest.importorskip("playwright.sync_api")
    client, tmp = site
    # A photo the model is sure about, so the camera's re-encoded frame reads the same.
    for path, digit in sample_images(dataset, 3, seed=8):
        answer = client.post("/api/predict", files={"file": (path.name, path.read_bytes())})
        if answer.json()["digit"] == digit and answer.json()["confidence"] > 0.95:
            break
    video = tmp / "hand.y4m"
    write_y4m(path, video)
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"])
        context = chromium.new_context(viewport={"width": 1200, "height": 900})
        context.grant_permissions(["camera"], origin=str(client.base_url))
        page = context.new_page()
        page.camera_photo = (path, digit)
        yield page
        chromium.close()


def _shots() -> Path | None:
    folder = os.environ.get("SIGNDIGITS_SCREENSHOT_DIR")
    return Path(folder) if folder else None


def _shoot(page, name: str, tmp: Path) -> None:
    target = (_shots() or tmp) / name
    save_screenshot(page, target)


def test_upload_watch_filter_open(site, browser, dataset, tmp_path):
    client, tmp = site
    page = browser
    folder = tmp_path / "photos"
    truth = copy_sample(dataset, folder, per_digit=4, seed=13)
    page.goto(f"{client.base_url}/")
    page.set_input_files("#folder", str(folder))
    page.click("#submit")
    page.wait_for_selector("#submit-message a.open-job", timeout=60_000)
    job_id = page.get_attribute("#submit-message a.open-job", "href").rsplit("/", 1)[1]
    row = f"#job-{job_id}"
    page.wait_for_selector(f"{row} td.state:text-is('done')", timeout=DONE)
    assert page.inner_text(f"{row} .muted") == f"{len(truth)} / {len(truth)}"
    _shoot(page, "web-jobs.png", tmp)

    page.click(f"{row} a")
    page.wait_for_selector("#state:text-is('done')", timeout=DONE)
    page.wait_for_selector("#cancel:disabled", timeout=10_000)  # nothing left to cancel
    page.wait_for_function(f"document.querySelectorAll('#grid .tile').length == {len(truth)}")
    page.wait_for_function("[...document.querySelectorAll('#grid img')].every(i => i.complete)")
    _shoot(page, "web-job.png", tmp)
    page.select_option("#filter-digit", "3")
    page.wait_for_function(
        "[...document.querySelectorAll('#grid .tile .label')].length > 0 && "
        "[...document.querySelectorAll('#grid .tile .label')]"
        ".every(l => l.textContent.startsWith('3 '))")
    titles = page.eval_on_selector_all("#grid .tile", "tiles => tiles.map(t => t.title)")
    assert titles and set(titles) <= set(truth)  # only the 3s, and every one a real upload
    page.click("#grid .tile >> nth=0")
    page.wait_for_selector("#detail[open] #detail-probabilities .col >> nth=9")
    # The photo with the hand drawn on it, and the 224 x 224 square that was read.
    page.wait_for_function("document.getElementById('detail-photo').naturalWidth === 400")
    page.wait_for_function("document.getElementById('detail-preview').naturalWidth === 224")
    assert page.inner_text("#detail-path") == titles[0]
    assert "hand landmarks" in page.inner_text("#detail-reading")
    # The colours are the threshold's (serving/preview.py), not "the answer's hand".
    assert page.inner_text("#detail-reading").endswith(HAND_COLOURS)
    assert page.inner_text("#detail-summary").startswith("digit 3, confidence")
    _shoot(page, "web-job-image.png", tmp)
    page.keyboard.press("Escape")


def test_try_upload_and_camera(site, browser, dataset):
    client, tmp = site
    page = browser
    photo, digit = sample_images(dataset, 1, seed=30)[5]
    page.goto(f"{client.base_url}/try")
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector("#answer:not([hidden])", timeout=60_000)
    assert page.inner_text("#answer-digit") == str(digit)
    assert page.eval_on_selector_all("#answer-probabilities .col", "c => c.length") == 10
    assert page.eval_on_selector_all("#answer-overlay g.answer circle", "c => c.length") == 21

    camera_photo, camera_digit = page.camera_photo
    page.evaluate("document.getElementById('answer').dataset.digit = ''")
    page.click("#camera-start")
    page.wait_for_function("document.getElementById('camera').videoWidth === 640")
    page.click("#camera-shoot")
    page.wait_for_function("document.getElementById('answer').dataset.digit !== ''",
                           timeout=60_000)
    assert page.inner_text("#answer-digit") == str(camera_digit), camera_photo
    # The frame is 640 x 480: the hands are drawn in its pixels, over it.
    assert page.get_attribute("#answer-overlay", "viewBox") == "0 0 640 480"
    page.wait_for_function("document.getElementById('answer-crop').naturalWidth === 224")
    page.wait_for_function("document.getElementById('answer-photo').complete")
    _shoot(page, "web-try.png", tmp)


def test_try_says_why_an_arm_without_its_hand_is_below_the_threshold(site, browser,
                                                                      tmp_path):
    """The strip beside the signing hand of a webcam photo, a forearm and no hand: what
    the page says of a "hand" unlike every hand the model trained on."""
    from tests.test_familiar import ARM_PHOTO, arm_strip

    require(ARM_PHOTO.is_file(), f"foreign photos not found at {ARM_PHOTO}")
    client, _ = site
    page = browser
    strip = arm_strip(tmp_path)
    page.goto(f"{client.base_url}/try")
    page.set_input_files("#photo", str(strip))
    page.wait_for_selector("#answer:not([hidden])", timeout=60_000)
    assert page.inner_text("#answer-headline") != "No hand found in this photo"
    assert page.inner_text("#answer-flag").endswith(
        "(a hand unlike every hand the model was trained on)")
    assert page.inner_text("#answer-reading").endswith(", unlike the training hands")


def test_review_three_images_with_the_keyboard(site, browser, dataset, tmp_path):
    """A digit key, Enter (the model's digit) and x (unusable), then Backspace and a new
    key for the last one: the rows say what was pressed, the counter counts images."""
    from tests.web_server import sse_until_done

    client, tmp = site
    page = browser
    folder = tmp_path / "to-review"
    copy_sample(dataset, folder, per_digit=1, seed=19)
    job = client.post("/api/jobs", json={"folder": str(folder), "threshold": 1.0}).json()
    sse_until_done(client, job["id"])
    queue = client.get(f"/api/jobs/{job['id']}/review", params={"limit": 100}).json()
    total = queue["total"]
    assert total >= 3
    page.goto(f"{client.base_url}/jobs/{job['id']}/review")
    page.wait_for_selector(f"#counter:text-is('0 of {total} reviewed')")

    shown, captioned = [], []
    for key in ("3", "Enter", "x"):
        page.wait_for_selector("#review-item:not([hidden])")
        page.wait_for_function(
            "document.getElementById('review-photo').complete && "
            "(document.getElementById('review-preview').naturalWidth === 224 || "
            "document.getElementById('review-crop').hidden)")
        shown.append(int(page.get_attribute("#review-item", "data-image")))
        guesses = 1 if page.is_hidden("#review-crop") else 3  # 'no hand found', or three
        assert page.eval_on_selector_all("#review-guesses li", "l => l.length") == guesses
        if key == "3":
            _shoot(page, "web-review.png", tmp)
        if guesses == 3:  # a hand drawn: the caption says what its colour means
            assert page.inner_text("#review-reading").endswith(HAND_COLOURS)
            captioned.append(key)
        page.keyboard.press(key)
    page.wait_for_selector("#review[data-saved='3']")
    page.wait_for_selector(f"#counter:text-is('3 of {total} reviewed')")
    assert captioned, "no photo with a hand drawn: its caption went unchecked"
    assert shown == [i["id"] for i in queue["items"][:3]]  # lowest confidence first

    page.keyboard.press("Backspace")
    page.wait_for_selector(f"#review-item[data-image='{shown[2]}']")
    assert "unusable" in page.inner_text("#review-answer")
    page.keyboard.press("5")
    page.wait_for_selector("#review[data-saved='4']")
    page.wait_for_selector(f"#counter:text-is('3 of {total} reviewed')")
    assert page.inner_text("#review-message") == ""

    items = {i["id"]: i for i in client.get(f"/api/jobs/{job['id']}/images",
                                            params={"limit": 100}).json()["items"]}
    assert items[shown[0]]["reviewed_digit"] == 3
    assert items[shown[1]]["reviewed_digit"] == items[shown[1]]["digit"]
    assert items[shown[2]]["reviewed_digit"] == 5 and items[shown[2]]["final_digit"] == 5
    history = client.get(f"/api/images/{shown[2]}/reviews").json()["items"]
    assert [(r["digit"], r["unusable"]) for r in history] == [(None, True), (5, False)]
    assert {r["reviewer"] for r in history} == {"anonymous"}


def test_review_a_group_photo_hand_by_hand_with_the_keyboard(site, browser, dataset, tmp_path):
    """Three people side by side: a digit for the first hand, n (not a hand) for the
    second, Enter (the model's) for the third; the marked hand moves left to right and
    the photo's digits follow."""
    from tests.photos import three_people
    from tests.web_server import sse_until_done

    client, tmp = site
    page = browser
    folder = tmp_path / "group"
    folder.mkdir()
    three_people(dataset, folder / "group.jpg")
    job = client.post("/api/jobs", json={"folder": str(folder), "threshold": 1.0}).json()
    sse_until_done(client, job["id"])
    page.goto(f"{client.base_url}/jobs/{job['id']}/review")
    page.wait_for_selector("#review-item[data-hand='0']:not([hidden])")
    assert page.is_visible("#key-not-hand")
    assert page.eval_on_selector_all("#review-guesses li.hand", "l => l.length") == 3
    assert page.inner_text("#review-guesses li.selected").startswith("hand 1 of 3: 4")
    page.keyboard.press("6")
    page.wait_for_selector("#review-item[data-hand='1']")
    assert page.inner_text("#review-guesses li.selected").startswith("hand 2 of 3: 0")
    page.keyboard.press("n")
    page.wait_for_selector("#review-item[data-hand='2']")
    page.keyboard.press("Enter")
    page.wait_for_selector("#review[data-saved='3']")
    page.wait_for_selector("#review-done:not([hidden])")
    assert page.inner_text("#review-message") == ""
    [image] = client.get(f"/api/jobs/{job['id']}/images").json()["items"]
    assert (image["final_digits"], image["final_digit"]) == ("67", None)
    history = client.get(f"/api/images/{image['id']}/reviews").json()["items"]
    assert [r["hand_digits"] for r in history] == [[6, 0, 7], [6, None, 7], [6, None, 7]]


def test_a_folder_upload_leaves_out_what_the_walk_would_and_the_last_source_chosen_wins(
        site, browser, dataset, tmp_path):
    """A Mac's folder (a readme, .DS_Store, an empty photo) had failed whole: now the page
    sends its photos only and says what it left out, and the empty one is an error row,
    as for the same folder named on the server. A text file chosen by name is refused in
    one line; a source chosen after it (the folder, the server folder) clears it: the
    picked files had always won over what was chosen next."""
    from tests.web_server import sse_until_done

    client, _ = site
    page = browser
    mac = tmp_path / "mac"
    (mac / "0").mkdir(parents=True)
    shutil.copyfile(sample_images(dataset, 1, seed=31)[0][0], mac / "0" / "0.jpg")
    (mac / "0" / "broken.jpg").write_bytes(b"")
    (mac / "readme.txt").write_text("day 1")
    (mac / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    expected = {"0/0.jpg": ("done", None), "0/broken.jpg": ("error", "empty file (0 bytes)")}
    page.goto(f"{client.base_url}/")

    refused = "#submit-message.error:has-text(\"'readme.txt' is not an image or a .zip\")"
    for source in ("#folder", "#server-folder"):
        page.set_input_files("#files", str(mac / "readme.txt"))
        page.click("#submit")
        page.wait_for_selector(refused)
        if source == "#folder":
            page.set_input_files("#folder", str(mac))
        else:
            page.fill("#server-folder", str(mac))
        assert page.eval_on_selector("#files", "i => i.files.length") == 0
        assert "the files chosen before cleared" in page.inner_text("#submit-message")
        page.click("#submit")
        page.wait_for_selector("#submit-message:has-text('Started mac: 2 images.')",
                               timeout=60_000)
        if source == "#folder":
            assert "Left out 2 files that are not images or hidden" in page.inner_text(
                "#submit-message")
        job_id = page.get_attribute("#submit-message a.open-job", "href").rsplit("/", 1)[1]
        sse_until_done(client, job_id)
        items = client.get(f"/api/jobs/{job_id}/images").json()["items"]
        assert {i["path"]: (i["status"], i["error"]) for i in items} == expected, source


def test_files_picked_by_name_with_a_stray_pdf_start_a_job_that_says_it_skipped_it(
        site, browser, dataset, tmp_path):
    """A PDF picked beside photos had stopped the page ("nothing was sent"), and had
    refused the whole upload on the server: now the photos make the job and the page
    lists what the server left out, one line each."""
    client, _ = site
    page = browser
    photo = tmp_path / "0.jpg"
    shutil.copyfile(sample_images(dataset, 1, seed=32)[0][0], photo)
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.4 minutes")
    page.goto(f"{client.base_url}/")
    page.set_input_files("#files", [str(photo), str(tmp_path / "notes.pdf")])
    page.click("#submit")
    page.wait_for_selector("#submit-message:has-text(': 1 images.')", timeout=60_000)
    assert page.inner_text("#submit-message ul.left-out li") == (
        "'notes.pdf' is not an image or a .zip of images; skipped")
