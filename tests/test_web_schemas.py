"""The API's Pydantic models: what they accept and refuse, the JSON they give, and the
schemas ``/openapi.json`` shows for them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from signdigits.db.models import Image, Job, JobState, Review
from signdigits.db.progress import JobSummary
from signdigits.web.fields import BatchSize, Offset, Threshold
from signdigits.web.review_schemas import ReviewIn, ReviewOut
from signdigits.web.schemas import ImageOut, JobOut, SubmitFolder
from signdigits.worker.thresholds import ModelRead


def _refusal(adapter: TypeAdapter, value) -> str:
    with pytest.raises(ValidationError) as refused:
        adapter.validate_python(value)
    [error] = refused.value.errors()
    return error["msg"]


@pytest.mark.parametrize("value, taken", [
    ("0.6", 0.6), (0, 0.0), (1, 1.0), (" 0.5 ", 0.5), ("1e-1", 0.1),
    ("", None), (None, None),  # an empty form field is no threshold
])
def test_a_threshold_is_taken(value, taken):
    assert TypeAdapter(Threshold).validate_python(value) == taken


@pytest.mark.parametrize("value", [True, False, 2, -1, "2", "high", math.nan, math.inf,
                                   "nan", int("1" * 400), [0.5]])
def test_a_threshold_is_refused_in_one_line(value):
    message = _refusal(TypeAdapter(Threshold), value)
    assert message.startswith("must be a number between 0 and 1 (got ")


@pytest.mark.parametrize("value, taken", [(12, 12), (12.0, 12), ("12", 12), (4096, 4096),
                                          ("", None)])
def test_a_batch_size_is_taken(value, taken):
    assert TypeAdapter(BatchSize).validate_python(value) == taken


@pytest.mark.parametrize("value", [1.7, 0, 4097, True, math.inf, "1e3", "x", -3])
def test_a_batch_size_is_refused(value):
    assert _refusal(TypeAdapter(BatchSize), value) == (
        f"must be an integer between 1 and 4096 (got {value!r})")


def test_a_jobs_cursor_is_an_offset_or_the_first_page():
    adapter = TypeAdapter(Offset)
    assert adapter.validate_python("40") == 40 and adapter.validate_python("") is None
    assert _refusal(adapter, "x") == "must be an integer between 0 and 1e+12 (got 'x')"


@pytest.mark.parametrize("body, message", [
    ({"folder": "relative/path"}, "must be an absolute path on the server"),
    ({"folder": 5}, "must be an absolute path on the server"),
    ({"folder": None}, "must be an absolute path on the server"),
    ({"folder": "/tmp/\x00x"}, "holds a NUL byte or an unpaired surrogate"),
    ({"folder": "/tmp/x/\ud800"}, "holds a NUL byte or an unpaired surrogate"),
    ([1, 2], 'send a JSON object: {"folder": "/abs/path"}'),
    ({}, "must be an absolute path on the server"),
    ({"folder": "/x", "batch_size": 1.7}, "must be an integer between 1 and 4096 (got 1.7)"),
])
def test_a_folder_submission_is_refused_with_what_is_wrong(body, message):
    with pytest.raises(ValidationError) as refused:
        SubmitFolder.model_validate(body)
    assert refused.value.errors()[0]["msg"] == message


def test_a_folder_submission_keeps_what_it_is_given():
    body = SubmitFolder.model_validate({"folder": "/x", "threshold": "0.25", "batch_size": 8,
                                        "other": "ignored"})
    assert (body.folder, body.threshold, body.batch_size) == ("/x", 0.25, 8)


@pytest.mark.parametrize("body, message", [
    ({"digit": 10}, "must be an integer between 0 and 9 (got 10)"),
    ({"digit": -1}, "must be an integer between 0 and 9 (got -1)"),
    ({"digit": "7"}, "must be an integer between 0 and 9 (got '7')"),  # a JSON integer only
    ({"digit": 7.0}, "must be an integer between 0 and 9 (got 7.0)"),
    ({"digit": True}, "must be an integer between 0 and 9 (got True)"),
    ({"unusable": "yes"}, "must be true or false"),
    ({"unusable": None}, "must be true or false"),
    ({}, 'send {"digit": 0-9} or {"unusable": true}; for one hand of several, '
         '{"hand": 0, "digit": 0-9} or {"hand": 0, "not_a_hand": true}'),
    ({"digit": None, "unusable": False}, 'send {"digit": 0-9} or {"unusable": true}; for one '
     'hand of several, {"hand": 0, "digit": 0-9} or {"hand": 0, "not_a_hand": true}'),
    ({"digit": 3, "unusable": True}, "send a digit or unusable, not both"),
    ([7], 'send {"digit": 0-9} or {"unusable": true}; for one hand of several, '
          '{"hand": 0, "digit": 0-9} or {"hand": 0, "not_a_hand": true}'),
    ({"hand": 1}, "with hand, send a digit or not_a_hand (one of them)"),
    ({"hand": 1, "unusable": True}, "unusable is for the whole photo: send it without hand"),
    ({"not_a_hand": True}, "not_a_hand needs the hand's place"),
    ({"hand": 64, "digit": 1}, "must be a hand's place, 0 to 63"),
])
def test_a_review_is_refused_with_what_is_wrong(body, message):
    with pytest.raises(ValidationError) as refused:
        ReviewIn.model_validate(body)
    assert refused.value.errors()[0]["msg"] == message


@pytest.mark.parametrize("body, answer", [({"digit": 7}, (7, False)), ({"digit": 0}, (0, False)),
                                          ({"unusable": True}, (None, True)),
                                          ({"unusable": True, "digit": None}, (None, True))])
def test_a_review_is_taken(body, answer):
    review = ReviewIn.model_validate(body)
    assert (review.digit, review.unusable) == answer


def test_a_jobs_json_is_the_shape_the_pages_and_clients_read():
    """Field for field, in order, and the time as ISO 8601 with +00:00 (SQLite's is naive)."""
    created = datetime(2026, 1, 2, 3, 4, 5, 678)
    job = Job(id="a" * 32, name="photos", root="/photos", threshold=0.6,
              threshold_from_model=False,
              model_version="v1", created_at=created, failure=None)
    summary = JobSummary(job=job, state=JobState.RUNNING, total=10, pending=4, done=5,
                         errors=1, cancelled=0, below_threshold=2, stalled=False,
                         last_finished=created.replace(second=15))
    shown = JobOut.of(summary).model_dump(mode="json")
    assert list(shown.items()) == [
        ("id", "a" * 32), ("name", "photos"), ("state", "running"), ("total_images", 10),
        ("done", 5),
        ("errors", 1), ("below_threshold", 2), ("cancelled", 0), ("pending", 4),
        ("threshold", 0.6), ("threshold_from_model", False), ("model_version", "v1"),
        ("created_at", "2026-01-02T03:04:05.000678+00:00"), ("images_per_second", 0.6),
        ("stalled", False), ("failure", None), ("folder", "/photos"), ("webhook", None),
        ("reviewed", None), ("models", None)]
    # One job's own answer adds the models that read it (several: one was promoted).
    reads = [ModelRead("v2", 3, 0.8), ModelRead("v1", 2, 0.6), ModelRead("v0", 1, None)]
    assert JobOut.of(summary, models=reads).model_dump(mode="json")["models"] == [
        {"version": "v2", "images": 3, "threshold": 0.8},
        {"version": "v1", "images": 2, "threshold": 0.6},
        {"version": "v0", "images": 1, "threshold": None}]
    job.webhook_url, job.webhook_state = "https://u:p@hooks.example/x?token=t", "sending"
    job.webhook_attempts, job.webhook_last_status = 2, "503"
    webhook = JobOut.of(summary).model_dump(mode="json")["webhook"]
    assert webhook == {"url": "https://hooks.example/x", "state": "sending", "attempts": 2,
                       "last_status": "503", "delivered_at": None,
                       "line": "webhook https://hooks.example/x: sending (2 attempts, last "
                               "answer 503)"}


def test_an_images_and_a_reviews_json():
    image = Image(id=3, path="7/a.jpg", status="done", digit=7, confidence=0.5,
                  below_threshold=True, error=None, probabilities=[0.05] * 10,
                  reading="hand landmarks", digits="7", hand_count=1,
                  hand={"hands": [{"box": [1, 2, 3, 4], "digit": 7, "confidence": 0.5,
                                   "below_threshold": True, "landmarks": [[1, 2]] * 21}]})
    review = Review(id=9, image_id=3, digit=1, unusable=False, reviewer="ann",
                    reviewed_at=datetime(2026, 1, 2, tzinfo=UTC))
    assert list(ImageOut.of(image, review).model_dump(mode="json").items()) == [
        ("id", 3), ("path", "7/a.jpg"), ("status", "done"), ("digit", 7), ("confidence", 0.5),
        ("below_threshold", True), ("error", None), ("probabilities", [0.05] * 10),
        ("reviewed_digit", 1), ("final_digit", 1), ("reviewed", True),
        ("reading", "hand landmarks"),
        ("digits", "7"), ("hand_count", 1), ("final_digits", "1"),
        ("hands", [{"position": 0, "box": [1, 2, 3, 4], "digit": 7, "confidence": 0.5,
                    "below_threshold": True}]), ("model_version", None)]
    assert ImageOut.of(image).final_digit == 7
    no_hand = Image(id=4, path="x.png", status="done", digit=None, confidence=0.0,
                    below_threshold=True, error=None, probabilities=None,
                    reading="no hand found")
    shown = ImageOut.of(no_hand).model_dump(mode="json")
    assert (shown["digit"], shown["final_digit"], shown["reading"]) == (
        None, None, "no hand found")
    assert ReviewOut.model_validate(review).model_dump(mode="json") == {
        "id": 9, "image_id": 3, "digit": 1, "unusable": False, "reviewer": "ann",
        "reviewed_at": "2026-01-02T00:00:00+00:00", "hand_digits": None}


def test_openapi_shows_the_job_and_image_schemas(tmp_path):
    """/docs had only `object` for every answer: the routes now declare their models."""
    from signdigits.config.settings import Settings
    from tests.web_server import serving

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}",
                        broker_url="redis://127.0.0.1:1/0", upload_dir=tmp_path / "up")
    with serving(settings) as client:
        document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert set(schemas["JobOut"]["properties"]) == set(JobOut.model_fields) >= {
        "id", "state", "total_images", "done", "pending", "threshold", "created_at", "folder"}
    assert set(schemas["ImageOut"]["properties"]) == {
        "id", "path", "status", "digit", "confidence", "below_threshold", "error",
        "probabilities", "reviewed_digit", "final_digit", "reviewed", "reading", "digits",
        "hand_count", "final_digits", "hands", "model_version"}
    assert set(schemas["PredictOut"]["properties"]) >= {
        "digit", "confidence", "reading", "hands", "crop_png", "photo_size"}
    assert set(schemas["HandOut"]["properties"]) == {"box", "landmarks", "digit", "confidence",
                                                     "below_threshold"}
    assert set(schemas["JobState"]["enum"]) == {state.value for state in JobState}
    paths = document["paths"]

    def answer(path: str, method: str, status: str = "200") -> dict:
        return paths[path][method]["responses"][status]["content"]["application/json"]["schema"]

    # The submit's answer is the job's and what of an upload it did without.
    assert answer("/api/jobs", "post", "201") == {"$ref": "#/components/schemas/JobSubmitted"}
    assert set(schemas["JobSubmitted"]["properties"]) == set(JobOut.model_fields) | {
        "left_out", "left_out_count"}
    assert answer("/api/jobs/{job_id}", "get") == {"$ref": "#/components/schemas/JobOut"}
    assert answer("/api/jobs", "get") == {"$ref": "#/components/schemas/JobPage"}
    assert schemas["JobPage"]["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/JobOut"}
    assert answer("/api/jobs/{job_id}/images", "get") == {
        "$ref": "#/components/schemas/ImagePage"}
    assert schemas["ImagePage"]["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/ImageOut"}
    # Both bodies of the one submit path, from their models.
    bodies = paths["/api/jobs"]["post"]["requestBody"]["content"]
    assert bodies["application/json"]["schema"]["required"] == ["folder"]
    assert set(bodies["multipart/form-data"]["schema"]["properties"]) == {
        "files", "threshold", "webhook", "name"}
    assert bodies["application/json"]["schema"]["properties"]["batch_size"]["anyOf"][0] == {
        "type": "integer", "minimum": 1, "maximum": 4096}
