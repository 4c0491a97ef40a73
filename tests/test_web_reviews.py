"""Reviewing over HTTP and in the terminal, against a real stack on SQLite and PostgreSQL.

The review queue, answers and their history, the reviewer behind basic auth, the export
of reviewed images and a training on it, and ``signdigits review`` at a real terminal's
input.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.conftest import copy_sample, link_signers
from tests.photos import three_people
from tests.web_server import serving, sse_until_done, web_stack


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def web(request, redis_url, tmp_path_factory):
    """One worker and one web server per database, shared by this module's tests."""
    yield from web_stack(request, redis_url, tmp_path_factory)


def _reviewable_job(web, dataset, folder: Path, *, per_digit: int = 2) -> tuple[str, dict]:
    """A finished folder job at threshold 1.0 (every image the model is not certain of, in
    practice all, is below it; the shipped model puts 17 of these 20 above 0.999) with one
    unreadable file (an error row); returns its id and path -> true digit."""
    truth = copy_sample(dataset, folder, per_digit=per_digit, seed=41)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    response = web.post("/api/jobs", json={"folder": str(folder), "threshold": 1.0})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert sse_until_done(web, job_id)[-1][1]["errors"] == 1
    return job_id, truth


def test_review_queue_answers_and_history(web, dataset, tmp_path):
    job_id, truth = _reviewable_job(web, dataset, tmp_path / "review")
    everything = web.get(f"/api/jobs/{job_id}/images", params={"limit": 500}).json()["items"]
    below = [i for i in everything if i["status"] == "done" and i["below_threshold"]]
    broken = next(i for i in everything if i["status"] == "error")
    assert len(below) >= 3

    queue = web.get(f"/api/jobs/{job_id}/review", params={"limit": 5}).json()
    assert (queue["reviewed"], queue["total"]) == (0, len(below))
    confidences = [i["confidence"] for i in queue["items"]]
    assert len(confidences) == 5 and confidences == sorted(confidences)
    assert confidences[0] == min(i["confidence"] for i in below)
    first, second, third = queue["items"][:3]

    # Bad answers: a 4xx with one line of detail, and nothing stored.
    for body, status in [({"digit": 10}, 422), ({"digit": -1}, 422), ({"digit": "7"}, 422),
                         ({"digit": True}, 422), ({}, 422), ({"digit": 3, "unusable": True}, 422),
                         ([7], 422)]:
        refused = web.post(f"/api/images/{first['id']}/review", json=body)
        assert refused.status_code == status, (body, refused.text)
        assert "\n" not in refused.json()["detail"] and refused.json()["detail"]
    assert web.post("/api/images/999999999/review", json={"digit": 1}).status_code == 404
    error_row = web.post(f"/api/images/{broken['id']}/review", json={"digit": 1})
    assert error_row.status_code == 409 and "error" in error_row.json()["detail"]
    assert web.get(f"/api/images/{first['id']}/reviews").json()["items"] == []

    # An answer, then a later one replacing it as current; the history keeps both.
    stored = web.post(f"/api/images/{first['id']}/review", json={"digit": 7})
    assert stored.status_code == 200, stored.text
    body = stored.json()
    assert body["digit"] == 7 and body["unusable"] is False and body["image_id"] == first["id"]
    assert body["reviewer"] == "anonymous"
    # Where the job's review queue stands, as the bulk answer names it; the old names too.
    assert (body["queue_reviewed"], body["queue_total"]) == (1, len(below))
    assert (body["reviewed"], body["total"]) == (1, len(below))
    again = web.post(f"/api/images/{first['id']}/review", json={"digit": 3}).json()
    assert again["queue_reviewed"] == 1  # the same image: still one reviewed
    history = web.get(f"/api/images/{first['id']}/reviews").json()["items"]
    assert [r["digit"] for r in history] == [7, 3]
    unusable = web.post(f"/api/images/{second['id']}/review", json={"unusable": True}).json()
    assert unusable["digit"] is None and unusable["unusable"] is True
    assert (unusable["queue_reviewed"], unusable["queue_total"]) == (2, len(below))

    # The queue moves on; items, CSV and JSON carry reviewed_digit and final_digit.
    after = web.get(f"/api/jobs/{job_id}/review", params={"limit": 500}).json()
    assert after["reviewed"] == 2 and first["id"] not in {i["id"] for i in after["items"]}
    assert len(after["items"]) == len(below) - 2
    items = {i["id"]: i for i in web.get(f"/api/jobs/{job_id}/images",
                                         params={"limit": 500}).json()["items"]}
    assert (items[first["id"]]["reviewed_digit"], items[first["id"]]["final_digit"]) == (3, 3)
    assert (items[second["id"]]["reviewed_digit"], items[second["id"]]["final_digit"]) == (None,
                                                                                          None)
    assert items[third["id"]]["reviewed_digit"] is None
    assert items[third["id"]]["final_digit"] == third["digit"]
    assert items[broken["id"]]["final_digit"] is None

    exported = web.get(f"/api/jobs/{job_id}/results.csv")
    header = exported.text.splitlines()[0].split(",")
    assert header[:9] == ["path", "digit", "confidence", "below_threshold", "error", "status",
                          "model_version", "worker", "finished_at"]
    assert header[9:] == ["reviewed_digit", "final_digit", "hand_box", "reading", "digits",
                          "hand_count", "reviewed_digits", "final_digits", "threshold"]
    rows = {r["path"]: r for r in csv.DictReader(io.StringIO(exported.text))}
    assert (rows[first["path"]]["reviewed_digit"], rows[first["path"]]["final_digit"]) == ("3",
                                                                                         "3")
    assert (rows[second["path"]]["reviewed_digit"], rows[second["path"]]["final_digit"]) == ("",
                                                                                           "")
    assert rows[third["path"]]["final_digit"] == str(third["digit"])
    as_json = {r["path"]: r for r in web.get(f"/api/jobs/{job_id}/results.json").json()}
    assert as_json[first["path"]]["final_digit"] == 3
    assert as_json[second["path"]]["final_digit"] is None
    assert as_json[third["path"]]["final_digit"] == third["digit"]
    assert as_json[third["path"]]["reviewed_digit"] is None
    written = tmp_path / "cli.json"
    cli = web.stack.cli("results", job_id, "--format", "json", "--output", str(written))
    assert cli.returncode == 0, cli.stderr
    assert json.loads(written.read_text()) == web.get(f"/api/jobs/{job_id}/results.json").json()
    table = web.stack.cli("results", job_id)
    line = next(x for x in table.stdout.splitlines() if x.endswith(first["path"]))
    assert line.split()[3:5] == ["3", "3"]


def test_a_photo_with_no_hand_waits_for_review_and_takes_a_digit(web, dataset, tmp_path):
    """No hand found: no digit, below any threshold, so in the queue; a person's digit
    becomes its final digit, and the export says how it was read."""
    from PIL import Image

    folder = tmp_path / "no-hand"
    copy_sample(dataset, folder, per_digit=1, seed=43)
    Image.new("RGB", (300, 200), (120, 160, 90)).save(folder / "lawn.png")
    job_id = web.post("/api/jobs", json={"folder": str(folder), "threshold": 0.1}).json()["id"]
    assert sse_until_done(web, job_id)[-1][1]["errors"] == 0
    queue = web.get(f"/api/jobs/{job_id}/review", params={"limit": 500}).json()["items"]
    lawn = next(i for i in queue if i["path"] == "lawn.png")
    assert (lawn["digit"], lawn["reading"], lawn["probabilities"]) == (
        None, "no hand found", None)
    assert web.get(f"/api/images/{lawn['id']}/annotated.jpg").status_code == 200
    missing = web.get(f"/api/images/{lawn['id']}/hand.png")
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"image {lawn['id']} has no hand (no hand found)"

    stored = web.post(f"/api/images/{lawn['id']}/review", json={"digit": 4})
    assert stored.status_code == 200, stored.text
    [row] = [r for r in web.get(f"/api/jobs/{job_id}/results.json").json()
             if r["path"] == "lawn.png"]
    assert (row["digit"], row["final_digit"], row["reading"], row["hand_box"]) == (
        None, 4, "no hand found", None)
    others = [r for r in web.get(f"/api/jobs/{job_id}/results.json").json()
              if r["path"] != "lawn.png" and r["digit"] is not None]
    assert others and all(len(r["hand_box"]) == 4 for r in others)


def test_the_reviewer_is_the_authenticated_user(web, dataset, tmp_path):
    """Behind basic auth the review records the user; a browser post without the CSRF
    token is refused as every other form post is."""
    job_id, _ = _reviewable_job(web, dataset, tmp_path / "auth", per_digit=1)
    image = web.get(f"/api/jobs/{job_id}/review", params={"limit": 1}).json()["items"][0]
    guarded = web.settings.model_copy(update={"web_auth": SecretStr("ann:a-long-secret-77")})
    with serving(guarded) as client:
        url = f"/api/images/{image['id']}/review"
        assert client.post(url, json={"digit": 4}).status_code == 401
        stored = client.post(url, json={"digit": 4}, auth=("ann", "a-long-secret-77"))
        assert stored.status_code == 200 and stored.json()["reviewer"] == "ann"
        cross_site = client.post(url, json={"digit": 5}, auth=("ann", "a-long-secret-77"),
                                 headers={"Origin": "https://elsewhere.example"})
        assert cross_site.status_code == 403
    assert [r["reviewer"] for r in web.get(f"{url}s").json()["items"]] == ["ann"]


def test_export_reviews_then_train_on_them(web, dataset, tmp_path):
    """The export's digit folders and manifest, and a (tiny) training on two folders."""
    if not web.settings.database_url.startswith("sqlite"):
        pytest.skip("the export reads the same rows on both databases; trained once")
    job_id, truth = _reviewable_job(web, dataset, tmp_path / "export-src")
    queue = web.get(f"/api/jobs/{job_id}/review", params={"limit": 500}).json()["items"]
    answers = {}
    for n, item in enumerate(queue[:8]):
        body = {"unusable": True} if n == 0 else {"digit": truth[item["path"]]}
        assert web.post(f"/api/images/{item['id']}/review", json=body).status_code == 200
        answers[item["path"]] = body.get("digit")
    # Written after its review: not the photo the person looked at (it was exported under
    # the reviewed digit all the same).
    changed = queue[1]["path"]
    (tmp_path / "export-src" / changed).write_bytes(b"another file now")
    del answers[changed]
    out = tmp_path / "export"
    done = web.stack.cli("export-reviews", job_id, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "exported 6 reviewed images" in done.stdout + done.stderr
    assert f"{changed}: changed since it was reviewed" in done.stdout + done.stderr
    with (out / "reviews.csv").open(newline="") as handle:
        manifest = list(csv.DictReader(handle))
    assert {r["path"]: int(r["digit"]) for r in manifest} == {
        p: d for p, d in answers.items() if d is not None}
    assert {r["job"] for r in manifest} == {job_id}
    assert {r["reviewer"] for r in manifest} == {"anonymous"}
    for row in manifest:
        exported = out / row["file"]
        assert exported.parent.name == row["digit"]
        assert exported.read_bytes() == (tmp_path / "export-src" / row["path"]).read_bytes()
    again = web.stack.cli("export-reviews", job_id, "--out", str(out))
    assert again.returncode == 1 and "not an empty folder" in again.stderr

    base = tmp_path / "base"
    link_signers(dataset, base, [1, 2, 3])  # whole signers, their hands cached across runs
    model = tmp_path / "m.keras"
    trained = web.stack.cli("train", "--data", str(base), "--data", str(out), "--epochs", "50",
                            "--out", str(model))
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert model.exists()
    from signdigits.serving.artifact import read_model_info
    from signdigits.training.data import SOURCE_STRIDE

    split = read_model_info(model).metadata["split"]
    # The base folder's 30 images and the export's 6, each folder split on its own: one of
    # the base's three signers is a test signer.
    assert split["train_images"] + split["validation_images"] + split["test_images"] == 36
    assert len([g for g in split["test_groups"] if g < SOURCE_STRIDE]) == 1


def test_review_in_the_terminal(web, dataset, tmp_path):
    """`signdigits review JOB`: a digit, Enter, x, then b and a new digit for the last."""
    import getpass
    import subprocess
    import sys

    job_id, _ = _reviewable_job(web, dataset, tmp_path / "terminal", per_digit=1)
    queue = web.get(f"/api/jobs/{job_id}/review", params={"limit": 3}).json()["items"]
    done = subprocess.run([sys.executable, "-m", "signdigits", "review", job_id],
                          # '²' and '٣' pass str.isdigit: a traceback, and a 3 stored
                          input="²\n٣\n3\n\nx\nb\n5\nq\n", text=True, capture_output=True,
                          env=web.stack.env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "stopped: 3 of" in done.stdout + done.stderr
    assert "'²': type one digit" in done.stdout + done.stderr
    histories = [web.get(f"/api/images/{i['id']}/reviews").json()["items"] for i in queue]
    assert [[(r["digit"], r["unusable"]) for r in h] for h in histories] == [
        [(3, False)], [(queue[1]["digit"], False)], [(None, True), (5, False)]]
    assert {r["reviewer"] for h in histories for r in h} == {getpass.getuser()}


def test_enter_on_a_photo_without_a_hand_stores_nothing(web, tmp_path):
    """The model has no digit for a wall: Enter had stored an empty review (no digit, not
    unusable) that `results` showed as nothing and export-reviews called a disagreement.
    Now Enter says to type the digit, and a typed one is stored."""
    import subprocess
    import sys

    from tests.photos import plain_wall

    (tmp_path / "walls").mkdir()
    plain_wall(tmp_path / "walls" / "wall.jpg")
    response = web.post("/api/jobs", json={"folder": str(tmp_path / "walls")})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    sse_until_done(web, job_id)
    [wall] = web.get(f"/api/jobs/{job_id}/review").json()["items"]
    done = subprocess.run([sys.executable, "-m", "signdigits", "review", job_id],
                          input="\n7\n", text=True, capture_output=True,
                          env=web.stack.env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    shown = done.stdout + done.stderr
    assert "wall.jpg: model no hand found" in shown and "Enter =" not in shown
    assert "no digit of the model's to accept" in shown
    history = web.get(f"/api/images/{wall['id']}/reviews").json()["items"]
    assert [(r["digit"], r["unusable"]) for r in history] == [(7, False)]


def test_an_exported_photo_with_a_long_name_gets_a_name_the_file_system_takes(tmp_path):
    """`<job8>-<id>-<name>` had gone past 255 bytes: the photo was skipped, exit 0."""
    from signdigits.training.review_export import _export_name

    name = _export_name("f" * 32, 123456, "sub/IMG_" + "L" * 240 + ".JPG")
    (tmp_path / name).write_bytes(b"fits")  # OSError: File name too long, before
    assert name.startswith("ffffffff-123456-IMG_L") and name.endswith("L.JPG")


def test_one_photo_answered_differently_in_two_jobs_is_exported_with_a_warning(web, dataset,
                                                                               tmp_path):
    """Both answers went into training, with no word of the disagreement."""
    if not web.settings.database_url.startswith("sqlite"):
        pytest.skip("the export reads the same rows on both databases")
    folder = tmp_path / "twice"
    first, _ = _reviewable_job(web, dataset, folder, per_digit=1)
    response = web.post("/api/jobs", json={"folder": str(folder), "threshold": 1.0})
    second = response.json()["id"]
    sse_until_done(web, second)
    queues = [web.get(f"/api/jobs/{job}/review", params={"limit": 500}).json()["items"]
              for job in (first, second)]
    path = queues[0][0]["path"]
    for digit, queue in zip((3, 8), queues, strict=True):
        item = next(i for i in queue if i["path"] == path)
        assert web.post(f"/api/images/{item['id']}/review", json={"digit": digit}).status_code \
            == 200
    done = web.stack.cli("export-reviews", first, second, "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    said = {f"{path}: reviewed as {a} in job {j[:8]} and as {b} in job {k[:8]}; both exported"
            for a, j, b, k in ((3, first, 8, second), (8, second, 3, first))}
    assert any(line in said for line in (done.stdout + done.stderr).splitlines()), done.stderr


def test_a_group_photo_is_reviewed_hand_by_hand(web, dataset, tmp_path):
    """Three people side by side: one hand corrected, another marked not a hand; the
    photo's digits follow in the queue's items, the export and the history."""
    folder = tmp_path / "group"
    folder.mkdir()
    three_people(dataset, folder / "group.jpg")
    response = web.post("/api/jobs", json={"folder": str(folder), "threshold": 1.0})
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    sse_until_done(web, job_id)
    [image] = web.get(f"/api/jobs/{job_id}/images").json()["items"]
    assert (image["digit"], image["digits"], image["hand_count"]) == (None, "407", 3)
    url = f"/api/images/{image['id']}/review"

    for body, status, says in [
            ({"hand": 3, "digit": 1}, 409, "has 3 hands: no hand 3"),
            ({"hand": 0}, 422, "a digit or not_a_hand"),
            ({"hand": 0, "digit": 1, "not_a_hand": True}, 422, "a digit or not_a_hand"),
            ({"hand": 0, "unusable": True}, 422, "unusable is for the whole photo"),
            ({"not_a_hand": True}, 422, "needs the hand's place"),
            ({"hand": -1, "digit": 1}, 422, "hand"), ({"hand": "1", "digit": 1}, 422, "hand")]:
        refused = web.post(url, json=body)
        assert refused.status_code == status, (body, refused.text)
        assert says in refused.json()["detail"] and "\n" not in refused.json()["detail"]

    corrected = web.post(url, json={"hand": 1, "digit": 6}).json()
    assert (corrected["hand_digits"], corrected["digit"], corrected["unusable"]) == (
        [4, 6, 7], None, False)
    dropped = web.post(url, json={"hand": 2, "not_a_hand": True}).json()
    assert dropped["hand_digits"] == [4, 6, None] and dropped["digit"] is None
    [shown] = web.get(f"/api/jobs/{job_id}/images").json()["items"]
    assert (shown["digits"], shown["final_digits"], shown["final_digit"]) == ("407", "46", None)
    rows = list(csv.DictReader(io.StringIO(web.get(f"/api/jobs/{job_id}/results.csv").text)))
    assert (rows[0]["digits"], rows[0]["reviewed_digits"], rows[0]["final_digits"]) == (
        "407", "46", "46")
    # One hand left: it is the photo's digit.
    last = web.post(url, json={"hand": 0, "not_a_hand": True}).json()
    assert (last["hand_digits"], last["digit"], last["unusable"]) == ([None, 6, None], 6, False)
    # A review of the whole photo replaces the hands'; a hand reviewed later starts again
    # from the model's.
    web.post(url, json={"unusable": True})
    [shown] = web.get(f"/api/jobs/{job_id}/images").json()["items"]
    assert (shown["final_digits"], shown["final_digit"]) == ("", None)
    again = web.post(url, json={"hand": 0, "digit": 9}).json()
    assert again["hand_digits"] == [9, 0, 7]
    history = web.get(f"/api/images/{image['id']}/reviews").json()["items"]
    assert [r["hand_digits"] for r in history] == [[4, 6, 7], [4, 6, None], [None, 6, None],
                                                   None, [9, 0, 7]]


def test_a_group_photo_is_reviewed_hand_by_hand_in_the_terminal(web, dataset, tmp_path):
    """`signdigits review` had only one digit for the whole photo: one character a hand
    now ("4-7": the middle one is not a hand), Enter keeps the model's hands."""
    import subprocess
    import sys

    folder = tmp_path / "group"
    folder.mkdir()
    three_people(dataset, folder / "group.jpg")
    shutil.copyfile(folder / "group.jpg", folder / "again.jpg")
    response = web.post("/api/jobs", json={"folder": str(folder), "threshold": 1.0})
    job_id = response.json()["id"]
    sse_until_done(web, job_id)
    queue = web.get(f"/api/jobs/{job_id}/review").json()["items"]
    assert [image["digits"] for image in queue] == ["407", "407"]
    done = subprocess.run([sys.executable, "-m", "signdigits", "review", job_id],
                          input="40\n4-7\n\n", text=True, capture_output=True,
                          env=web.stack.env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    shown = done.stdout + done.stderr
    assert ".jpg: model 407 (3 hands, left to right)" in shown
    assert "'40': type one digit 0-9, 3 characters (0-9 or -)" in shown
    assert "nothing left to review: 2 of 2 reviewed" in shown
    histories = [web.get(f"/api/images/{image['id']}/reviews").json()["items"]
                 for image in queue]
    assert [[(r["hand_digits"], r["digit"]) for r in h] for h in histories] == [
        [([4, None, 7], None)], [([4, 0, 7], None)]]
    finals = {row["id"]: row["final_digits"]
              for row in web.get(f"/api/jobs/{job_id}/images").json()["items"]}
    assert [finals[image["id"]] for image in queue] == ["47", "407"]
