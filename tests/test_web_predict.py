"""``POST /api/predict`` against a real stack: uvicorn, Valkey, a Celery worker, SQLite and
PostgreSQL. One photo is read by a worker while the client waits: its digit, its hands in
the photo's own pixels, a small hand read on a closer decode as a batch reads it, a photo
without a hand, a worker that fails, the photo kept when asked, and its own queue.
"""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import copy_sample, sample_images
from tests.photos import beside_a_resting_hand, small_hand
from tests.waiting import broker_client, pop_within
from tests.web_server import sse_until_done, web_stack


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def web(request, redis_url, tmp_path_factory):
    """One worker and one web server per database, shared by this module's tests."""
    yield from web_stack(request, redis_url, tmp_path_factory)


def test_predict_one_photo(web, dataset):
    path, digit = next((p, d) for p, d in sample_images(dataset, 1, seed=21) if d == 7)
    response = web.post("/api/predict", files={"file": (path.name, path.read_bytes())},
                        data={"threshold": "0.5"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["digit"] == digit
    assert len(answer["probabilities"]) == 10
    assert answer["probabilities"][digit] == pytest.approx(answer["confidence"], abs=1e-5)
    assert answer["below_threshold"] == (answer["confidence"] < 0.5)
    assert answer["model_version"]
    assert answer["reading"] in ("hand landmarks, whole photo",
                                "hand landmarks, whole photo, placed once", "hand landmarks",
                                "hand landmarks, on a padded copy")
    assert answer["photo_size"] == list(Image.open(path).size)
    hand = answer["hands"][0]
    assert hand["digit"] == digit and len(hand["landmarks"]) == 21
    x0, y0, x1, y1 = hand["box"]
    # The photo's own pixels: a tight crop cuts fingers off, whose points may be placed a
    # little past its edge.
    assert -25 <= x0 < x1 <= 125 and -25 <= y0 < y1 <= 125
    assert all(x0 - 1 <= x <= x1 + 1 and y0 - 1 <= y <= y1 + 1 for x, y in hand["landmarks"])
    crop = Image.open(io.BytesIO(base64.b64decode(answer["crop_png"])))
    assert crop.size == (224, 224)
    assert "job_id" not in answer  # nothing stored unless asked


@pytest.mark.parametrize("share", [0.05, 0.1, 0.125])
def test_predict_reads_a_small_hand_on_a_closer_decode_as_a_batch_does(web, dataset,
                                                                        tmp_path, share):
    """No hand at the usual decode (9 pixels there: found on the closer one only in its
    finest tiles), or one of 23 pixels: the web decodes the photo closer and asks again,
    to search it or to place that hand again, so /try answers what a job's row says: the
    same points as serving.reader.look finds."""
    from signdigits.serving.hands.finder import HandFinder
    from signdigits.serving.hands.models import default_models_dir
    from signdigits.serving.reader import look

    digit = small_hand(dataset, tmp_path / "small.jpg", share=share)
    response = web.post("/api/predict",
                        files={"file": ("small.jpg", (tmp_path / "small.jpg").read_bytes())})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["digit"], answer["hand_count"], answer["photo_size"]) == (
        digit, 1, [1280, 960])
    photo, [hand] = look(HandFinder(default_models_dir()), tmp_path / "small.jpg")
    assert photo.scale == 1.0  # the points of the closer decode: its pixels are the photo's
    served = np.array(answer["hands"][0]["landmarks"])  # the photo's own pixels
    assert np.abs(served - hand.landmarks.points[:, :2]).max() < 1
    crop = Image.open(io.BytesIO(base64.b64decode(answer["crop_png"])))
    assert crop.size == (224, 224)


def test_predict_sets_a_resting_hand_aside_as_a_batch_does(web, dataset, tmp_path):
    """A hand pointing down beside a signing one: one digit, said so, as serving.reader
    reads the photo in a batch."""
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.models import default_models_dir
    from signdigits.serving.reader import HandReader

    digit = beside_a_resting_hand(dataset, tmp_path / "resting.jpg")
    response = web.post("/api/predict",
                        files={"file": ("resting.jpg", (tmp_path / "resting.jpg").read_bytes())})
    assert response.status_code == 200, response.text
    answer = response.json()
    _, batch = HandReader.from_folder(Classifier(), default_models_dir()).look(
        tmp_path / "resting.jpg")
    assert (answer["digit"], answer["hand_count"], answer["reading"]) == (
        digit, 1, "hand landmarks, 1 more pointing down, not read") == (
        batch.answer.prediction.digit, len(batch.hands), batch.how)
    assert answer["below_threshold"] is False and len(answer["hands"]) == 1


def test_a_photo_with_no_hand_is_an_answer_not_an_error(web):
    plain = io.BytesIO()
    Image.new("RGB", (320, 240), (90, 140, 200)).save(plain, "PNG")
    response = web.post("/api/predict", files={"file": ("sky.png", plain.getvalue())},
                        data={"store": "true"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["digit"], answer["reading"], answer["hands"], answer["crop_png"]) == (
        None, "no hand found", [], None)
    assert answer["below_threshold"] is True and answer["photo_size"] == [320, 240]
    [image] = web.get(f"/api/jobs/{answer['job_id']}/images").json()["items"]
    assert (image["digit"], image["reading"], image["final_digit"]) == (
        None, "no hand found", None)
    stats = web.get(f"/api/jobs/{answer['job_id']}/stats").json()
    assert (stats["digits"], stats["no_hand"]) == ([0] * 10, 1)


def test_a_prediction_that_fails_in_the_worker_is_answered_at_once(web, dataset):
    """The worker pushed no reply when it failed: whoever waited sat out the timeout."""
    import json

    from signdigits.broker.app import PREDICT_QUEUE
    from signdigits.broker.messages import PREDICT_TASK_NAME, predict_reply_key
    from signdigits.serving.photo import read_photo
    from signdigits.web.imaging import photo_message

    app = web.stack.app()
    reply_to = predict_reply_key(f"test-{time.monotonic_ns()}")
    rgb_b64, size, original_size = photo_message(read_photo(next((dataset / "5").iterdir())))
    app.send_task(PREDICT_TASK_NAME, args=[rgb_b64, size, original_size,
                                           "not a number"],  # a threshold the web refuses
                  kwargs={"reply_to": reply_to}, queue=PREDICT_QUEUE, ignore_result=True)
    found = pop_within(broker_client(web.stack.broker_url), reply_to, timeout=30)
    assert found is not None, "no reply within 30 s"
    assert json.loads(found)["failed"].startswith("TypeError")


@pytest.mark.parametrize("name, stored_as", [
    ("blob", "photo.png"),  # a camera frame's name
    ("a" * 300 + ".JPG", "photo.jpg"),  # longer than a file name may be: it was a 400
    ("C:x.jpg", "photo.jpg"),  # names the upload rules refuse were a 400 after classifying
    (" .jpg", "photo.jpg"),
])
def test_predict_stores_the_photo_when_asked(web, dataset, name, stored_as):
    path, digit = next((p, d) for p, d in sample_images(dataset, 1, seed=22) if d == 4)
    jobs_before = web.get("/api/jobs", params={"limit": 200}).json()["items"]
    response = web.post("/api/predict", files={"file": (name, path.read_bytes())},
                        data={"store": "true"})
    assert response.status_code == 200, response.text
    answer = response.json()
    job = web.get(f"/api/jobs/{answer['job_id']}").json()
    assert (job["state"], job["total_images"], job["done"]) == ("done", 1, 1)
    assert job["threshold_from_model"] is True  # no threshold was given: the model's
    assert job["id"] not in {j["id"] for j in jobs_before}
    [image] = web.get(f"/api/jobs/{job['id']}/images").json()["items"]
    assert image["id"] == answer["image_id"] and image["path"] == stored_as
    assert (image["digit"], image["confidence"]) == (answer["digit"], answer["confidence"])
    assert answer["digit"] == digit
    assert image["reading"] == answer["reading"]
    thumbnail = web.get(f"/api/images/{image['id']}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.content[:2] == b"\xff\xd8"
    crop = web.get(f"/api/images/{image['id']}/hand.png")  # the stored hand, cut again
    assert crop.status_code == 200 and crop.content[:4] == b"\x89PNG", crop.text


def test_predict_is_not_queued_behind_a_jobs_batches(web, dataset, tmp_path):
    """The answer comes while the job's batches still wait: its own queue is served first.

    On one shared queue the photo would wait behind every batch enqueued before it, and
    the job would have no pending image left when the answer came.
    """
    folder = tmp_path / "backlog"
    copy_sample(dataset, folder, per_digit=40, seed=17)
    job = web.post("/api/jobs", json={"folder": str(folder), "batch_size": 8}).json()
    path, digit = sample_images(dataset, 1, seed=23)[2]
    answer = web.post("/api/predict", files={"file": (path.name, path.read_bytes())})
    pending = web.get(f"/api/jobs/{job['id']}").json()["pending"]
    assert answer.status_code == 200 and answer.json()["digit"] == digit
    assert pending > 0, "the prediction waited for the whole job"
    sse_until_done(web, job["id"])
