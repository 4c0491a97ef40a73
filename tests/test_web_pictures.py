"""What the reader saw, as the web shows it: ``annotated.jpg`` and ``hand.png`` of a stored
image, and ``/try`` in a real browser (Debian's Chromium) on a real stack.

The stored rows' hands are found here by the real hand finder on real dataset photos
(the test process may load the hand models; the web never does) and recorded with the
``db`` layer's own functions, so the pictures are checked against the photo itself. The
browser part sends photos through a real worker.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import Stack, require, sample_images
from tests.photos import beside_a_resting_hand, small_hand, three_people
from tests.web_server import CHROMIUM, desktop_page, save_screenshot, serving

NO_HAND = "no hand found"


def _hand_records(photo_path: Path) -> list[dict]:
    """The hands the hand finder finds in the photo, as a worker stores them."""
    from signdigits.serving.hands.finder import HandFinder
    from signdigits.serving.hands.models import default_models_dir
    from signdigits.serving.photo import read_photo
    from signdigits.serving.preview import hand_record

    photo = read_photo(photo_path)
    hands = HandFinder(default_models_dir()).find(photo.image)
    return [hand_record(h, scale=photo.scale, digit=int(photo_path.parent.name),
                        confidence=0.9) for h in hands]


def _record(settings, root: Path, path: str, hands: list[dict]) -> int:
    """A classified one-image job, as ``POST /api/predict`` with store=true records one."""
    from signdigits.db.results import record_prediction
    from signdigits.db.session import session_factory

    answer = {"digit": hands[0]["digit"] if hands else None,
              "confidence": 0.9 if hands else 0.0, "below_threshold": not hands,
              "threshold": 0.5, "probabilities": [0.01] * 10 if hands else None,
              "model_version": "test", "reading": "hand landmarks" if hands else NO_HAND,
              "hands": hands}
    with session_factory(settings.database_url)() as session, session.begin():
        return record_prediction(session, root=str(root), path=path, answer=answer,
                                 threshold_from_model=True)[1]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """A web server (no worker: nothing here is classified) on a fresh SQLite database."""
    from signdigits.config.settings import Settings

    tmp = tmp_path_factory.mktemp("pictures")
    settings = Settings(database_url=f"sqlite:///{tmp / 'r.db'}",
                        broker_url="redis://127.0.0.1:1/0", upload_dir=tmp / "uploads")
    with serving(settings) as client:
        yield client, tmp


def test_a_stored_hand_is_drawn_on_the_photo_and_cut_out_again(pictures, dataset):
    from signdigits.serving.photo import read_photo
    from signdigits.serving.preview import ANSWER_COLOUR, hand_crop

    client, _ = pictures
    path = sorted((dataset / "3").iterdir())[0]
    hands = _hand_records(path)
    require(bool(hands), f"the hand finder found no hand in {path}")
    image_id = _record(client.settings, dataset, f"3/{path.name}", hands)

    annotated = client.get(f"/api/images/{image_id}/annotated.jpg")
    assert annotated.status_code == 200, annotated.text
    assert annotated.headers["content-type"] == "image/jpeg"
    drawn = np.asarray(Image.open(io.BytesIO(annotated.content)).convert("RGB")).astype(int)
    assert drawn.shape == (400, 400, 3)  # the 100 x 100 photo, enlarged to be drawn on
    scale = 400 / 100
    x0, y0, x1, y1 = (round(v * scale) for v in hands[0]["box"])
    edge = drawn[(y0 + y1) // 2, x0 - 1:x0 + 3]  # the box's left side, in the answer's green
    assert any(np.abs(px - ANSWER_COLOUR).max() < 80 for px in edge), edge.tolist()
    smaller = client.get(f"/api/images/{image_id}/annotated.jpg", params={"side": 200})
    assert Image.open(io.BytesIO(smaller.content)).size == (200, 200)

    crop = client.get(f"/api/images/{image_id}/hand.png")
    assert crop.status_code == 200, crop.text
    assert crop.headers["content-type"] == "image/png"
    served = np.asarray(Image.open(io.BytesIO(crop.content)).convert("RGB"))
    photo = read_photo(path)
    expected = np.asarray(hand_crop(photo.image, hands[0], scale=photo.scale))
    assert served.shape == (224, 224, 3) and np.array_equal(served, expected)


def test_a_small_hand_is_cut_out_of_the_closer_decode_the_worker_read(pictures, dataset):
    """The hand found only on a closer decode (serving.reader.look) is cut out of that
    decode, as the worker read it, not out of the usual one, where it is 14 pixels."""
    from signdigits.serving.hands.finder import HandFinder
    from signdigits.serving.hands.models import default_models_dir
    from signdigits.serving.preview import hand_crop, hand_record
    from signdigits.serving.reader import look

    client, tmp = pictures
    digit = small_hand(dataset, tmp / "small.jpg")
    photo, hands = look(HandFinder(default_models_dir()), tmp / "small.jpg")
    assert photo.image.size == (1280, 960) and len(hands) == 1
    record = hand_record(hands[0], scale=photo.scale, digit=digit, confidence=0.9)
    image_id = _record(client.settings, tmp, "small.jpg", [record])
    crop = client.get(f"/api/images/{image_id}/hand.png")
    assert crop.status_code == 200, crop.text
    served = np.asarray(Image.open(io.BytesIO(crop.content)).convert("RGB"))
    assert np.array_equal(served, np.asarray(hand_crop(photo.image, record, scale=1.0)))


def test_no_hand_is_a_404_in_one_line_and_the_photo_alone(pictures, dataset):
    from signdigits.db.jobs import create_job
    from signdigits.db.manifest import add_manifest
    from signdigits.db.models import Job
    from signdigits.db.session import session_factory

    client, tmp = pictures
    plain = tmp / "plain"
    plain.mkdir()
    Image.new("RGB", (300, 200), (90, 140, 200)).save(plain / "sky.png")
    image_id = _record(client.settings, plain, "sky.png", [])
    missing = client.get(f"/api/images/{image_id}/hand.png")
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"image {image_id} has no hand ({NO_HAND})"}
    alone = client.get(f"/api/images/{image_id}/annotated.jpg")
    assert alone.status_code == 200, alone.text
    pixels = np.asarray(Image.open(io.BytesIO(alone.content)).convert("RGB")).astype(int)
    assert pixels.shape == (267, 400, 3) and np.abs(pixels - (90, 140, 200)).max() < 12

    # A row no worker has read yet: the photo, not cached; no hand yet.
    with session_factory(client.settings.database_url)() as session, session.begin():
        job = Job(id="beef" * 8, root=str(dataset), threshold=0.5, batch_size=1, total_images=1,
                  total_batches=1, model_version="test")
        create_job(session, job=job)
        four = next((dataset / "4").iterdir())
        add_manifest(session, job_id=job.id, rows=[(0, f"4/{four.name}")])
    [pending] = client.get(f"/api/jobs/{'beef' * 8}/images").json()["items"]
    shown = client.get(f"/api/images/{pending['id']}/annotated.jpg")
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-cache"
    assert client.get(f"/api/images/{pending['id']}/hand.png").json() == {
        "detail": f"image {pending['id']} has no hand (not read yet)"}
    assert client.get("/api/images/987654321/hand.png").status_code == 404


# --- /try in a real browser, through a real worker --------------------------------------


@pytest.fixture(scope="module")
def site(redis_url, tmp_path_factory, dataset):
    from signdigits.config.settings import Settings

    require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (scripts/test installs it)")
    tmp = tmp_path_factory.mktemp("try")
    stack = Stack(redis_url, f"sqlite:///{tmp / 'r.db'}", tmp)
    stack.start_worker(concurrency=1)
    settings = Settings(broker_url=stack.broker_url, database_url=stack.database_url,
                        upload_dir=tmp / "uploads")
    try:
        with serving(settings) as client:
            yield client, tmp
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def page(site):
    with desktop_page() as opened:
        yield opened


def _shoot(page, name: str, tmp: Path) -> None:
    import os

    target = Path(os.environ.get("SIGNDIGITS_SCREENSHOT_DIR") or tmp) / name
    save_screenshot(page, target)


def _try(page, client, photo: Path, answered: str) -> None:
    """``photo`` uploaded on /try, as a person picks it, until ``answered`` is on the page."""
    page.goto(f"{client.base_url}/try")
    page.set_input_files("#photo", str(photo))
    page.wait_for_selector(answered, timeout=60_000)


def test_try_draws_the_hand_over_the_photo_and_shows_its_square(site, page, dataset):
    client, tmp = site
    photo, digit = sample_images(dataset, 1, seed=31)[6]
    _try(page, client, photo, "#answer:not([hidden])")
    assert page.inner_text("#answer-digit") == str(digit)
    # The overlay: the answer's hand, 21 points and 21 bones and its box, over the photo.
    overlay = "#answer-overlay g.answer"
    assert page.eval_on_selector_all(f"{overlay} circle.point", "c => c.length") == 21
    assert page.eval_on_selector_all(f"{overlay} line.bone", "l => l.length") == 21
    assert page.eval_on_selector_all(f"{overlay} rect.box", "r => r.length") == 1
    assert page.get_attribute("#answer-overlay", "viewBox") == "0 0 100 100"
    photo_box = page.locator("#answer-photo").bounding_box()
    svg_box = page.locator("#answer-overlay").bounding_box()
    assert photo_box and svg_box and photo_box["width"] > 400  # 100 x 100, shown at 480
    assert all(abs(photo_box[k] - svg_box[k]) < 1 for k in ("x", "y", "width", "height"))
    # The points sit where the answer says, scaled to the displayed size.
    answer = client.post("/api/predict", files={"file": (photo.name, photo.read_bytes())}).json()
    wrist = page.locator(f"{overlay} circle.point >> nth=0").bounding_box()
    shown = photo_box["width"] / 100
    x, y = answer["hands"][0]["landmarks"][0]
    assert wrist is not None
    assert abs(wrist["x"] + wrist["width"] / 2 - (photo_box["x"] + x * shown)) < 2
    assert abs(wrist["y"] + wrist["height"] / 2 - (photo_box["y"] + y * shown)) < 2
    page.wait_for_function("document.getElementById('answer-crop').naturalWidth === 224")
    assert page.is_visible("#answer-crop")
    assert "hand landmarks" in page.inner_text("#answer-reading")
    _shoot(page, "web-try-hand.png", tmp)


def test_try_says_no_hand_for_a_photo_without_one(site, page, tmp_path):
    client, tmp = site
    plain = tmp_path / "wall.png"
    Image.new("RGB", (640, 480), (200, 190, 170)).save(plain)
    _try(page, client, plain, "#answer[data-digit='none']")
    assert page.inner_text("#answer-headline") == "No hand found in this photo"
    assert page.inner_text("#answer-reading") == NO_HAND
    assert page.is_visible("#answer-photo") and not page.is_visible("#answer-crop")
    assert not page.is_visible("#answer-scores")
    assert page.eval_on_selector_all("#answer-overlay *", "c => c.length") == 0
    assert page.inner_text("#try-message") == ""  # an answer, not an error
    _shoot(page, "web-try-no-hand.png", tmp)


def test_try_reads_every_hand_of_a_group_left_to_right(site, page, dataset, tmp_path):
    """Three people side by side: the headline is the string, each hand drawn with its
    digit over the photo, in reading order."""
    client, tmp = site
    group = tmp_path / "group.jpg"
    digits = three_people(dataset, group)
    _try(page, client, group, f"#answer[data-digit='{digits}']")
    assert page.inner_text("#answer-headline") == f"digits {digits}"
    assert page.inner_text("#answer-reading").startswith("3 hands, read left to right")
    labels = page.eval_on_selector_all("#answer-overlay g.hand text.label",
                                       "t => t.map(n => n.textContent)")
    assert labels == list(digits)
    lefts = page.eval_on_selector_all("#answer-overlay g.hand rect.box",
                                      "r => r.map(n => Number(n.getAttribute('x')))")
    assert lefts == sorted(lefts) and len(lefts) == 3
    # The photo's confidence is its least sure hand's, and says so; the wide photo is
    # drawn wider than a 4:3 one (480 px), each hand large enough to see.
    assert page.inner_text("#answer-confidence").endswith("the least sure of the 3 hands")
    assert page.inner_text("#answer-crop-caption").startswith("what was read of the first hand")
    assert page.eval_on_selector("#answer-stage", "s => s.getBoundingClientRect().width") > 600
    _shoot(page, "web-try-several.png", tmp)


def test_try_reads_the_signing_hand_and_says_the_resting_one_was_not(site, page, dataset,
                                                                     tmp_path):
    """A hand pointing down beside the signing one: one digit, one hand drawn, and the
    page says a hand was left out."""
    client, tmp = site
    photo = tmp_path / "resting.jpg"
    digit = beside_a_resting_hand(dataset, photo)
    _try(page, client, photo, f"#answer[data-digit='{digit}']")
    assert page.inner_text("#answer-reading") == (
        "read from the hand landmarks, 1 more pointing down, not read")
    assert page.eval_on_selector_all("#answer-overlay g.hand", "g => g.length") == 1
    assert page.eval_on_selector("#answer-overlay g.hand rect.box",
                                 "r => Number(r.getAttribute('x'))") < 640
    _shoot(page, "web-try-resting.png", tmp)

