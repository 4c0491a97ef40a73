"""The job page's endpoints over HTTP, on a real stack on SQLite and PostgreSQL: bulk
review, the reviewed filter, the charts with reviews applied, the events naming the
batches stored, the answers checked against folder labels (and ``results --labels``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import copy_sample
from tests.web_server import sse_until_done, web_stack


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def web(request, redis_url, tmp_path_factory):
    yield from web_stack(request, redis_url, tmp_path_factory)


def _job(web, folder: Path, **options) -> tuple[str, list[tuple]]:
    response = web.post("/api/jobs", json={"folder": str(folder), **options})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    return job_id, sse_until_done(web, job_id)


def _items(web, job_id: str, **params) -> list[dict]:
    return web.get(f"/api/jobs/{job_id}/images", params={"limit": 500, **params}).json()["items"]


def test_bulk_review_by_ids_and_by_filter(web, dataset, tmp_path):
    folder = tmp_path / "bulk"
    copy_sample(dataset, folder, per_digit=2, seed=51)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    job_id, _ = _job(web, folder, threshold=1.0)
    everything = _items(web, job_id)
    done = [i for i in everything if i["status"] == "done"]
    broken = next(i for i in everything if i["status"] == "error")
    url = f"/api/jobs/{job_id}/reviews"

    # Bad input: a 4xx with one line, and nothing stored.
    picked = [i["id"] for i in done[:3]]
    for body, status in [
            ({}, 422), ({"digit": 3}, 422), ({"image_ids": [], "digit": 3}, 422),
            ({"image_ids": picked}, 422),
            ({"image_ids": picked, "digit": 3, "unusable": True}, 422),
            ({"image_ids": ["1"], "digit": 3}, 422), ({"image_ids": picked, "digit": 10}, 422),
            ({"filter": {"colour": "red"}, "digit": 3}, 422),
            ({"image_ids": picked, "filter": {}, "digit": 3}, 422), ([1, 2], 422),
            ({"image_ids": [*picked, broken["id"]], "digit": 3}, 409),
            ({"image_ids": [*picked, 10**12], "digit": 3}, 404),
            ({"filter": {"below_threshold": True}, "expected": 1, "digit": 3}, 409)]:
        refused = web.post(url, json=body)
        assert refused.status_code == status, (body, refused.text)
        detail = refused.json()["detail"]
        assert detail and "\n" not in detail, (body, detail)
    assert web.post(url, content=b"{", headers={"Content-Type": "application/json"}
                    ).status_code == 400
    assert web.post("/api/jobs/ffffffff/reviews", json={"image_ids": picked, "digit": 3}
                    ).status_code == 404
    assert _items(web, job_id, reviewed="true") == []

    # Three by id: one review row each, the final digit theirs.
    stored = web.post(url, json={"image_ids": [*picked, picked[0]], "digit": 7})
    assert stored.status_code == 200, stored.text
    # The answer says what was just answered (each image once), then the review queue.
    assert stored.json() == {"answered": 3, "image_ids": sorted(picked), "digit": 7,
                             "unusable": False, "answered_below_threshold": 3,
                             "queue_reviewed": 3, "queue_total": len(done)}
    for image_id in picked:
        history = web.get(f"/api/images/{image_id}/reviews").json()["items"]
        assert [(r["digit"], r["unusable"]) for r in history] == [(7, False)]
    assert sorted(i["id"] for i in _items(web, job_id, reviewed="true")) == sorted(picked)
    assert all(i["final_digit"] == 7 and i["reviewed"] for i in _items(web, job_id,
                                                                       reviewed="true"))
    unreviewed = _items(web, job_id, reviewed="false")
    assert len(unreviewed) == len(everything) - 3 and not any(i["reviewed"] for i in unreviewed)

    # Everything a filter matches (the server applies it): the model's 5s, not reviewed.
    where = {"digit": 5, "reviewed": False}
    count = web.get(f"/api/jobs/{job_id}/images/count", params=where).json()["count"]
    expected = [i["id"] for i in done if i["digit"] == 5 and i["id"] not in picked]
    assert count == len(expected) > 0
    marked = web.post(url, json={"filter": where, "expected": count, "unusable": True}).json()
    assert (marked["answered"], marked["image_ids"], marked["digit"], marked["unusable"]) == (
        count, sorted(expected), None, True)
    assert (marked["queue_reviewed"], marked["queue_total"]) == (3 + count, len(done))
    assert {i["id"] for i in _items(web, job_id, reviewed="true")} == {*picked, *expected}
    # Answered again: counted as answered now, while the queue's reviewed count stays (it
    # had been the answer's only count, and read as this one's).
    again = web.post(url, json={"image_ids": [picked[0]], "digit": 7}).json()
    assert (again["answered"], again["answered_below_threshold"]) == (1, 1)
    assert again["queue_reviewed"] == 3 + count

    # The charts count the final digits: the 3 moved to 7, the 5s to unusable.
    stats = web.get(f"/api/jobs/{job_id}/stats").json()
    final = Counter(i["final_digit"] for i in _items(web, job_id) if i["status"] == "done")
    assert stats["digits"] == [final.get(d, 0) for d in range(10)]
    assert stats["unusable"] == count
    assert sum(stats["digits"]) + stats["no_hand"] + stats["unusable"] == len(done)


def test_the_events_name_the_batches_stored_and_the_first_holds_the_charts(web, dataset,
                                                                          tmp_path):
    folder = tmp_path / "live"
    copy_sample(dataset, folder, per_digit=1, seed=52)
    response = web.post("/api/jobs", json={"folder": str(folder), "batch_size": 3})
    job_id = response.json()["id"]
    events = sse_until_done(web, job_id, stored=True)
    assert events[0][0] == "stats" and len(events[0][1]["digits"]) == 10
    named = [b for name, data in events if name == "stored" for b in data["batches"]]
    # Each batch once: named as it is stored, or already counted in the opening charts
    # (a batch stored before the stream opened is never named again: the page would add
    # rows the figures already hold).
    assert len(named) == len(set(named)) and set(named) <= {0, 1, 2, 3}
    opening = events[0][1]
    counted = sum(opening["digits"]) + opening["no_hand"] + opening["unusable"]
    in_named = len(_items(web, job_id, batch=named)) if named else 0
    assert counted + in_named == 10, (counted, named)
    # The labels' figures come second, counting the same batches; and every progress or
    # done event counts exactly the batches named before it (the page draws them together).
    assert events[1][0] == "evaluation"
    finished = 10 - events[1][1]["pending"]
    assert finished == counted
    for name, data in events[2:]:
        if name == "stored":
            finished += len(_items(web, job_id, batch=data["batches"]))
        else:
            assert data["total_images"] - data["pending"] == finished, (events, finished)
    # The progress and done events are the job as GET /api/jobs/{id} shows it, nothing more.
    assert set(events[-1][1]) == set(web.get(f"/api/jobs/{job_id}").json())
    rows = _items(web, job_id, batch=[1, 3], order="id")
    assert sorted({r["path"] for r in rows}) == sorted(
        r["path"] for r in _items(web, job_id, order="id")[3:6] + _items(
            web, job_id, order="id")[9:10])
    assert web.get(f"/api/jobs/{job_id}/images", params={"batch": "x"}).status_code == 422
    # A finished job's stream: the charts, then done; no batch named.
    again = sse_until_done(web, job_id, stored=True)
    assert [name for name, _ in again] == ["stats", "evaluation", "done"]
    # Without stored=true the stream is as it was: the job's own events only.
    assert [name for name, _ in sse_until_done(web, job_id)] == ["done"]
    assert again[0][1] == web.get(f"/api/jobs/{job_id}/stats").json()
    assert again[1][1] == web.get(f"/api/jobs/{job_id}/evaluation").json()


def test_answers_checked_against_the_folder_labels(web, dataset, tmp_path):
    folder = tmp_path / "labelled"
    truth = copy_sample(dataset, folder, per_digit=3, seed=53)
    (folder / "unlabelled").mkdir()
    (folder / "unlabelled" / "x.jpg").write_bytes((folder / next(iter(truth))).read_bytes())
    (folder / "4" / "broken.jpg").write_bytes(b"not a jpeg")
    job_id, _ = _job(web, folder, threshold=0.95)
    items = [i for i in _items(web, job_id) if i["path"] in truth]
    right = [i for i in items if i["digit"] == truth[i["path"]]]
    wrong = [i for i in items if i["digit"] != truth[i["path"]]]
    kept = [i for i in items if not i["below_threshold"]]

    found = web.get(f"/api/jobs/{job_id}/evaluation").json()
    assert (found["counted"], found["right"], found["errors"], found["unlabelled"]) == (
        len(truth), len(right), 1, 1)
    assert found["kept"] == len(kept)
    assert found["kept_right"] == sum(i["digit"] == truth[i["path"]] for i in kept)
    assert sum(map(sum, found["matrix"])) == len(truth)
    for i in items:
        answer = 10 if i["digit"] is None else i["digit"]
        assert found["matrix"][truth[i["path"]]][answer] >= 1
    assert sum(n for n, _ in found["by_confidence"]) == len(truth)

    # The wrong ones, and one cell of the matrix, as the grid asks for them.
    assert {i["id"] for i in _items(web, job_id, wrong="true")} == {i["id"] for i in wrong}
    threes = _items(web, job_id, label=3, digit=3)
    assert {i["id"] for i in threes} == {i["id"] for i in right if truth[i["path"]] == 3}

    # A review of a wrong answer: the model's figures stay, the final ones move.
    if wrong:
        web.post(f"/api/images/{wrong[0]['id']}/review",
                 json={"digit": truth[wrong[0]["path"]]})
        after = web.get(f"/api/jobs/{job_id}/evaluation").json()
        assert after["right"] == found["right"]
        assert after["final_right"] == found["final_right"] + 1

    # The command line prints the same figures, from folders or from a CSV.
    printed = web.stack.cli("results", job_id, "--labels", "folders")
    assert printed.returncode == 0, printed.stderr
    assert f"accuracy: {len(right)} of {len(truth)} right" in printed.stdout
    labels = tmp_path / "labels.csv"
    labels.write_text("path,digit\n" + "".join(f"{p},{d}\n" for p, d in truth.items()))
    from_file = web.stack.cli("results", job_id, "--labels", str(labels))
    assert from_file.returncode == 0, from_file.stderr
    assert f"accuracy: {len(right)} of {len(truth)} right" in from_file.stdout
    assert "2 without a label" in from_file.stdout  # the unlabelled photo and the broken one
    labels.write_text("a.jpg,12\n")
    bad = web.stack.cli("results", job_id, "--labels", str(labels))
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0, bad.stderr
    assert "line 1: the digit must be 0-9" in bad.stderr
    plain = web.stack.cli("results", job_id)
    assert "accuracy" not in plain.stdout and plain.returncode == 0




LATER, GONE = "a1" * 8, "b2" * 8  # GONE: registered with no threshold, its files gone


def _job_of_two_models(web, dataset, folder: Path) -> tuple[str, str, float]:
    """A job of 10 photos in batches of 3, 3, 3 and 1, its threshold its model's default:
    (its id, the model it was submitted with, that model's default threshold)."""
    copy_sample(dataset, folder, per_digit=1, seed=54)
    job_id, _ = _job(web, folder, batch_size=3)
    job = web.get(f"/api/jobs/{job_id}").json()
    assert job["threshold_from_model"] and job["done"] == 10
    return job_id, job["model_version"], job["threshold"]


def _read_later(web, job_id: str):
    """Batches 0 and 1 read by LATER (its default threshold 0.6), batch 3 by GONE."""
    from tests.models import read_by_another

    return read_by_another(web.stack.sessions(), job_id, {0: (LATER, 0.6), 1: (LATER, 0.6),
                                                         3: (GONE, None)})


def _threshold_given(web, job_id: str, threshold: float) -> None:
    from sqlalchemy import update

    from signdigits.db.models import Job

    with web.stack.sessions().begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(
            threshold_from_model=False, threshold=threshold))


def test_a_job_read_by_several_models_names_each_with_its_images_and_threshold(web, dataset,
                                                                               tmp_path):
    """A model promoted while a job ran read its later batches: the job's answer names
    every model with the images it read and, the threshold being each model's default,
    the threshold it flagged them by (not the submit's alone)."""
    job_id, submitted, threshold = _job_of_two_models(web, dataset, tmp_path / "two-models")
    assert web.get(f"/api/jobs/{job_id}").json()["models"] == [
        {"version": submitted, "images": 10, "threshold": threshold}]
    with _read_later(web, job_id):
        job = web.get(f"/api/jobs/{job_id}").json()
        assert job["models"] == [{"version": LATER, "images": 6, "threshold": 0.6},
                                 {"version": submitted, "images": 3, "threshold": threshold},
                                 {"version": GONE, "images": 1, "threshold": None}]
        # The submit's fields are as they were. The done event is the job as its answer
        # shows it; lists leave the models out (they would count every job's rows).
        assert (job["model_version"], job["threshold"]) == (submitted, threshold)
        assert sse_until_done(web, job_id)[-1][1] == job
        listed = web.get("/api/jobs", params={"limit": 200}).json()["items"]
        assert next(j for j in listed if j["id"] == job_id)["models"] is None
        renamed = web.patch(f"/api/jobs/{job_id}", json={"name": "two models"}).json()
        assert renamed["models"] == job["models"]

        # A threshold someone gave flagged every model's images.
        _threshold_given(web, job_id, 0.7)
        job = web.get(f"/api/jobs/{job_id}").json()
        assert [(m["images"], m["threshold"]) for m in job["models"]] == [
            (6, 0.7), (3, 0.7), (1, 0.7)]


def test_status_names_every_model_that_read_a_job(web, dataset, tmp_path):
    job_id, submitted, threshold = _job_of_two_models(web, dataset, tmp_path / "status")
    alone = web.stack.cli("status", job_id)
    assert alone.returncode == 0 and "read by" not in alone.stdout, alone.stdout
    with _read_later(web, job_id):
        said = web.stack.cli("status", job_id)
        assert said.returncode == 0, said.stderr
        assert (f"job {job_id}: read by 3 models (a model was promoted after it was "
                f"submitted with {submitted}), each flagging by its own default threshold: "
                f"{LATER} 6 images, threshold 0.6; {submitted} 3 images, threshold "
                f"{threshold:g}; {GONE} 1 image, threshold unknown (its files are gone)"
                ) in said.stdout, said.stdout
        # The table's model column: each model and the images it read.
        assert f"{LATER} (6)" in said.stdout and f"{GONE} (1)" in said.stdout, said.stdout
        # The answers against the folder labels: kept by the threshold of each model.
        checked = web.stack.cli("results", job_id, "--labels", "folders")
        assert checked.returncode == 0, checked.stderr
        assert (f"at the threshold each model that read it applied (0.6 by model {LATER}; "
                f"{threshold:g} by model {submitted}; unknown by model {GONE}): "
                ) in checked.stdout, checked.stdout
        assert "    0.600  " in checked.stdout  # a row of the table at 0.6 too

        _threshold_given(web, job_id, 0.7)
        said = web.stack.cli("status", job_id).stdout
        assert ("every one flagging by the threshold given, 0.7: "
                f"{LATER} 6 images; {submitted} 3 images; {GONE} 1 image") in said, said
        checked = web.stack.cli("results", job_id, "--labels", "folders").stdout
        assert "at the job's threshold 0.7: " in checked, checked
