"""The HTTP API against a real stack: uvicorn, Valkey, a Celery worker, SQLite and PostgreSQL.

Uploads of real photos (files with folder paths, and a zip) become jobs the worker
classifies; the API's pages, filters, pictures, exports and events are checked against
the database and the photos (predictions: tests/test_web_predict.py).
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import copy_sample, sample_images
from tests.waiting import wait_until
from tests.web_server import sse_until_done, web_stack

JOB_FIELDS = {"id", "state", "total_images", "done", "errors", "below_threshold", "cancelled",
              "pending", "threshold", "model_version", "created_at", "images_per_second"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def web(request, redis_url, tmp_path_factory):
    """One worker and one web server per database, shared by this module's tests."""
    yield from web_stack(request, redis_url, tmp_path_factory)


def _upload_sample(dataset: Path, per_digit: int, seed: int):
    """Half the sample as files named by folder path (as a browser's folder upload sends
    them), half in one zip; returns the multipart fields and path -> true digit."""
    files, truth, archive = [], {}, io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for n, (path, digit) in enumerate(sample_images(dataset, per_digit, seed=seed)):
            relative = f"{digit}/{path.name}"
            truth[relative] = digit
            if n % 2:
                zipped.write(path, relative)
            else:
                files.append(("files", (relative, path.read_bytes(), "image/jpeg")))
    files.append(("files", ("more.zip", archive.getvalue(), "application/zip")))
    return files, truth


def test_upload_is_classified_and_browsable(web, dataset):
    files, truth = _upload_sample(dataset, per_digit=2, seed=11)
    response = web.post("/api/jobs", files=files, data={"threshold": "0.6"})
    assert response.status_code == 201, response.text
    job = response.json()
    assert set(job) >= JOB_FIELDS and job["total_images"] == len(truth)
    assert job["threshold"] == 0.6 and job["threshold_from_model"] is False

    events = sse_until_done(web, job["id"])
    final = events[-1][1]
    assert final["state"] == "done" and final["done"] == len(truth) and final["pending"] == 0
    assert web.get(f"/api/jobs/{job['id']}").json() == final
    refused = web.post(f"/api/jobs/{job['id']}/cancel")  # it had become "cancelled"
    assert refused.status_code == 409 and "already ended" in refused.json()["detail"]
    assert web.get(f"/api/jobs/{job['id']}").json() == final

    # Keyset pages of 7 cover every image exactly once, with the uploaded paths.
    seen, cursor = [], None
    for _ in range(len(truth) // 7 + 2):  # bounded: a cursor repeating a page fails, not hangs
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = web.get(f"/api/jobs/{job['id']}/images", params=params).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    else:
        pytest.fail(f"the pages never ended: {len(seen)} items of {len(truth)}")
    assert sorted(i["path"] for i in seen) == sorted(truth)
    right = sum(i["digit"] == truth[i["path"]] for i in seen)
    assert right >= 0.9 * len(truth), f"{right} of {len(truth)} right"
    # A photo where no hand was found has no digit and no probabilities, and says so.
    assert all(len(i["probabilities"]) == 10 if i["digit"] is not None else
               (i["probabilities"], i["reading"]) == (None, "no hand found") for i in seen)

    # Lowest confidence first, across pages; a digit filter returns only that digit.
    ordered, cursor = [], None
    for _ in range(len(truth) // 6 + 2):
        params = {"order": "confidence", "limit": 6, **({"cursor": cursor} if cursor else {})}
        page = web.get(f"/api/jobs/{job['id']}/images", params=params).json()
        ordered += [i["confidence"] for i in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    else:
        pytest.fail(f"the pages never ended: {len(ordered)} items of {len(truth)}")
    assert ordered == sorted(ordered) and len(ordered) == len(truth)
    digit = next(i["digit"] for i in seen if i["digit"] is not None)
    only = web.get(f"/api/jobs/{job['id']}/images", params={"digit": digit}).json()["items"]
    assert only and {i["digit"] for i in only} == {digit}
    below = web.get(f"/api/jobs/{job['id']}/images", params={"below_threshold": "true"})
    assert all(i["confidence"] < 0.6 for i in below.json()["items"])

    # Pictures: the thumbnail is a small JPEG; the annotated photo and the hand's square
    # are drawn from the hands the worker stored (tests/test_web_pictures.py checks them).
    image = next(i for i in seen if i["digit"] is not None)
    assert image["reading"] in ("hand landmarks, whole photo",
                                "hand landmarks, whole photo, placed once", "hand landmarks",
                                "hand landmarks, on a padded copy")
    thumb = web.get(f"/api/images/{image['id']}/thumbnail")
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 256
    annotated = web.get(f"/api/images/{image['id']}/annotated.jpg")
    assert annotated.headers["content-type"] == "image/jpeg", annotated.text
    assert Image.open(io.BytesIO(annotated.content)).size == (400, 400)  # 100 x 100, enlarged
    crop = web.get(f"/api/images/{image['id']}/hand.png")
    assert crop.headers["content-type"] == "image/png", crop.text
    assert Image.open(io.BytesIO(crop.content)).size == (224, 224)


def test_exports_match_the_cli_and_folder_jobs(web, dataset, tmp_path):
    folder = tmp_path / "photos"
    truth = copy_sample(dataset, folder, per_digit=1, seed=5)
    # An older job, so that the jobs list below has a second page whatever ran before.
    photo = next(folder.rglob("*.JPG"))
    older_job = web.post("/api/jobs", files=[("files", (photo.name, photo.read_bytes()))])
    assert older_job.status_code == 201, older_job.text
    response = web.post("/api/jobs", json={"folder": str(folder), "batch_size": 4})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert sse_until_done(web, job_id)[-1][1]["done"] == len(truth)

    exported = web.get(f"/api/jobs/{job_id}/results.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    # Byte for byte, line ends included (stdout in text mode would translate CRLF).
    written = tmp_path / "cli.csv"
    cli = web.stack.cli("results", job_id, "--format", "csv", "--output", str(written))
    assert cli.returncode == 0, cli.stderr
    assert exported.content == written.read_bytes()
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert sorted(r["path"] for r in rows) == sorted(truth)
    as_json = web.get(f"/api/jobs/{job_id}/results.json").json()
    assert [r["path"] for r in as_json] == [r["path"] for r in rows]

    listed = web.get("/api/jobs", params={"limit": 1}).json()
    assert listed["items"][0]["id"] == job_id and listed["next_cursor"]
    empty_cursor = web.get("/api/jobs", params={"limit": 1, "cursor": ""})  # it was a 500
    assert empty_cursor.status_code == 200 and empty_cursor.json()["items"][0]["id"] == job_id
    older = web.get("/api/jobs", params={"limit": 1, "cursor": listed["next_cursor"]}).json()
    assert older["items"][0]["id"] != job_id


def test_cancel_skips_what_has_not_started(redis_url, dataset, tmp_path):
    """The API's cancel: the batch in flight stores nothing, the rest are skipped.

    The test holds batch 1 in the worker (tests/faults.py), so the cancel lands while rows
    are pending whatever the machine's pace (with a free worker the whole folder could be
    classified before the cancel arrived, and nothing be left to cancel).
    """
    from signdigits.config.settings import Settings
    from tests.conftest import Stack
    from tests.holds import BatchHolds
    from tests.web_server import serving

    folder = tmp_path / "many"
    copy_sample(dataset, folder, per_digit=3, seed=3)
    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'results.db'}", tmp_path)
    settings = Settings(broker_url=stack.broker_url, database_url=stack.database_url,
                        upload_dir=tmp_path / "uploads")
    holds = BatchHolds(stack.broker_url)
    try:
        stack.start_worker(concurrency=1, faults=True, SIGNDIGITS_TEST_HOLD_BATCHES="1")
        with serving(settings) as web:
            job = web.post("/api/jobs", json={"folder": str(folder), "batch_size": 6}).json()
            holds.wait_held(job["id"], 1)  # batch 0 stored, batch 1 in flight, 2-4 queued
            cancelled = web.post(f"/api/jobs/{job['id']}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["state"] == "cancelled"
            holds.release(job["id"], 1)

            def settled() -> dict | None:
                now = web.get(f"/api/jobs/{job['id']}").json()
                return None if now["pending"] else now

            body = wait_until(settled, timeout=60, message="no rows pending after the cancel")
    finally:
        stack.stop()
    assert body["state"] == "cancelled"
    assert (body["done"], body["cancelled"], body["errors"]) == (6, 24, 0), body
    assert body["total_images"] == 30


def test_thumbnails_stay_inside_the_jobs_folder(web, dataset, tmp_path):
    """A file swapped for a symlink to a secret after the scan is never served."""
    folder = tmp_path / "swap"
    copy_sample(dataset, folder, per_digit=1, seed=9)
    job_id = web.post("/api/jobs", json={"folder": str(folder)}).json()["id"]
    sse_until_done(web, job_id)
    image = web.get(f"/api/jobs/{job_id}/images", params={"limit": 1}).json()["items"][0]
    secret = tmp_path / "secret.jpg"
    secret.write_bytes((dataset / image["path"]).read_bytes())
    (folder / image["path"]).unlink()
    (folder / image["path"]).symlink_to(secret)
    for kind in ("thumbnail", "annotated.jpg", "hand.png"):
        refused = web.get(f"/api/images/{image['id']}/{kind}")
        assert refused.status_code == 422 and "outside" in refused.json()["detail"]


def test_a_non_utf8_names_pictures_are_served(web, dataset, tmp_path):
    """The file is opened by its bytes (``raw_path``), not by the escaped name shown.

    Both had been 422 "file not found": the escaped ``caf\\xe9.jpg`` is no file.
    """
    import os
    import shutil

    folder = tmp_path / "latin1"
    folder.mkdir()
    photo = next((dataset / "4").iterdir())
    shutil.copyfile(photo, os.fsencode(folder) + b"/caf\xe9.jpg")
    job_id = web.post("/api/jobs", json={"folder": str(folder)}).json()["id"]
    sse_until_done(web, job_id)
    image = web.get(f"/api/jobs/{job_id}/images").json()["items"][0]
    assert image["path"] == "caf\\xe9.jpg" and image["digit"] == 4, image
    thumbnail = web.get(f"/api/images/{image['id']}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.content[:2] == b"\xff\xd8", thumbnail.text
    annotated = web.get(f"/api/images/{image['id']}/annotated.jpg")
    assert annotated.status_code == 200 and annotated.content[:2] == b"\xff\xd8", annotated.text
    crop = web.get(f"/api/images/{image['id']}/hand.png")
    assert crop.status_code == 200 and crop.content[:4] == b"\x89PNG", crop.text


@pytest.mark.parametrize("ref", ["%00", "a%00b", "%FF", "%ED%B2%80", "x" * 33])
def test_a_job_id_no_job_can_have_is_404_on_every_job_route(web, ref):
    """A NUL was a 500 on PostgreSQL (text cannot hold one), on every one of these."""
    for method, url in (("GET", f"/api/jobs/{ref}"), ("GET", f"/api/jobs/{ref}/images"),
                        ("GET", f"/api/jobs/{ref}/results.csv"), ("GET", f"/jobs/{ref}"),
                        ("GET", f"/api/jobs/{ref}/review"), ("POST", f"/api/jobs/{ref}/cancel")):
        response = web.request(method, url)
        assert response.status_code == 404, (method, url, response.text)


def test_the_events_of_latest_stay_with_the_job_latest_named_when_they_began(web, dataset,
                                                                            tmp_path):
    """The stream had asked for `latest` again every second: a newer job took it over."""
    import json
    import threading

    import httpx

    folder = tmp_path / "first"
    copy_sample(dataset, folder, per_digit=20, seed=5)
    first = web.post("/api/jobs", json={"folder": str(folder), "batch_size": 8}).json()
    streamed, began = [], threading.Event()

    def read(client: httpx.Client) -> None:
        with client.stream("GET", "/api/jobs/latest/events") as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    streamed.append(json.loads(line[6:]))
                    began.set()  # `latest` was resolved: now a newer job may come
                    if streamed[-1]["state"] in ("done", "done with errors", "failed"):
                        return

    with httpx.Client(base_url=str(web.base_url), timeout=120) as other:
        reader = threading.Thread(target=read, args=(other,), daemon=True)
        reader.start()
        assert began.wait(60), "no first event in 60 s"
        path = sample_images(dataset, 1, seed=6)[0][0]
        newer = web.post("/api/jobs", files=[("files", ("n.jpg", path.read_bytes()))]).json()
        reader.join(240)
    assert not reader.is_alive(), "no done event in 240 s"
    assert {data["id"] for data in streamed} == {first["id"]} != {newer["id"]}
    assert streamed[-1]["state"] == "done" and streamed[-1]["done"] == 200
