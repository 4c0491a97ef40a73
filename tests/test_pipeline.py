"""The batch pipeline end to end: real Valkey, real Celery workers, SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from signdigits.broker.messages import TASK_NAME
from signdigits.db.models import Image, Job
from signdigits.db.session import session_factory
from tests.conftest import Stack, copy_sample, make_env, run_cli
from tests.photos import plain_wall, small_hand, three_people
from tests.waiting import wait_until


@pytest.fixture
def stack(redis_url, database_url, tmp_path):
    stack = Stack(redis_url, database_url, tmp_path)
    yield stack
    stack.stop()


def test_folder_to_rows_end_to_end(stack, dataset, tmp_path):
    images = tmp_path / "photos"
    truth = copy_sample(dataset, images, per_digit=25, seed=11)
    (images / "broken.jpg").write_text("this is not a JPEG")
    plain_wall(images / "wall.jpg")
    group_digits = three_people(dataset, images / "group.jpg")
    small_digit = small_hand(dataset, images / "small.jpg")
    stack.start_worker()

    with stack.task_events() as events:
        submitted = stack.cli("submit", str(images), "--batch-size", "32", "--threshold", "0.9")
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip()
        job = stack.wait_for(job_id)
        assert job.total_images == 254 and job.total_batches == 8
        events.expect(job.total_batches)
        assert events.wait(60), "not every batch's task reported"
    # CPU seconds per stage, which `bench` divides by the images (these very names).
    for stage in ("cpu_decode", "cpu_palms", "cpu_landmarks", "cpu_classify"):
        assert events.task_seconds[stage] > 0, (stage, events.task_seconds)

    rows = stack.rows(job_id)
    assert sorted(r.path for r in rows) == sorted([*truth, "broken.jpg", "wall.jpg",
                                                   "group.jpg", "small.jpg"])
    by_path = {r.path: r for r in rows}
    # A hand 14 pixels wide at the usual decode: found on a closer one, its box in the
    # photo's own pixels (1280 x 960), about 4.5% of its width.
    small = by_path.pop("small.jpg")
    assert (small.status, small.digit, small.hand_count) == ("done", small_digit, 1)
    x0, y0, x1, y1 = small.hand["hands"][0]["box"]
    assert 0 <= x0 < x1 <= 1280 and 0 <= y0 < y1 <= 960 and 30 < x1 - x0 < 100
    # Three people side by side: three hands in reading order, boxes inside the photo, no
    # single digit; the hands table holds the same, one row each.
    group = by_path.pop("group.jpg")
    assert (group.status, group.digit, group.digits, group.hand_count) == (
        "done", None, group_digits, 3)
    assert group.reading == "hand landmarks, 3 hands"
    hands = stack.hands(group.id)
    assert [(h.position, h.digit) for h in hands] == [(0, 4), (1, 0), (2, 7)]
    assert [h["box"] for h in group.hand["hands"]] == [[h.x0, h.y0, h.x1, h.y1] for h in hands]
    assert all(0 <= h.x0 < h.x1 <= 1920 and 0 <= h.y0 < h.y1 <= 480 for h in hands)
    assert [h.x0 for h in hands] == sorted(h.x0 for h in hands)
    assert group.confidence == pytest.approx(min(h.confidence for h in hands))
    assert group.below_threshold == any(h.below_threshold for h in hands)
    broken = by_path.pop("broken.jpg")
    assert broken.status == "error" and "not an image" in broken.error
    assert broken.reading is None and broken.hand is None
    # No hand is a result, not an error: no digit, below the threshold, and said so.
    wall = by_path.pop("wall.jpg")
    assert (wall.status, wall.digit, wall.class_index, wall.confidence, wall.below_threshold,
            wall.reading, wall.hand) == ("done", None, None, 0.0, True, "no hand found", None)
    assert (wall.digits, wall.hand_count, stack.hands(wall.id)) == ("", 0, [])
    correct = sum(by_path[p].digit == d for p, d in truth.items())
    assert correct >= 0.95 * len(truth), f"{correct}/{len(truth)}"
    for row in by_path.values():
        assert row.status == "done" and row.model_version == job.model_version
        assert row.worker.startswith("test-")
        if row.reading == "no hand found":  # a few of the dataset's photos (counted wrong)
            assert (row.digit, row.confidence, row.below_threshold, row.hand) == (
                None, 0.0, True, None)
            continue
        assert row.below_threshold == (row.confidence < 0.9)
        assert len(row.probabilities) == 10 and abs(sum(row.probabilities) - 1) < 1e-3
        assert row.probabilities[row.digit] == pytest.approx(row.confidence, abs=1e-5)
        assert row.reading in ("hand landmarks, whole photo",
                               "hand landmarks, whole photo, placed once", "hand landmarks",
                               "hand landmarks, on a padded copy")
        answer = row.hand["hands"][0]  # the hand the digit was read from comes first
        assert (answer["digit"], answer["confidence"]) == (
            row.digit, pytest.approx(row.confidence, abs=1e-5))
        assert len(answer["landmarks"]) == 21
        x0, y0, x1, y1 = answer["box"]  # in the photo's own pixels (the dataset's 100 x 100)
        assert -50 <= x0 < x1 <= 150 and -50 <= y0 < y1 <= 150, answer["box"]

    # A batch delivered again (as after a lost acknowledgement) changes nothing.
    from signdigits.broker.app import create_app
    from signdigits.config.settings import Settings

    before = {r.id: (r.digit, r.finished_at) for r in rows}
    hands_before = stack.hand_count(job_id)
    app = create_app(Settings(broker_url=stack.broker_url, database_url=stack.database_url))
    with stack.task_events() as completions:
        for batch in range(job.total_batches):
            app.send_task(TASK_NAME, args=[job_id, batch])
        completions.expect(job.total_batches)
        assert completions.wait(60), "the re-sent batches were never handled"
    assert not completions.failed
    after = stack.rows(job_id)
    assert len(after) == len(rows)
    assert {r.id: (r.digit, r.finished_at) for r in after} == before
    assert stack.hand_count(job_id) == hands_before  # no hand written twice

    status = stack.cli("status", job_id[:8])
    assert status.returncode == 0 and "done with errors" in status.stdout
    assert "254/254" in status.stdout

    as_csv = stack.cli("results", "latest", "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    records = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(records) == 254
    assert list(records[0])[:5] == ["path", "digit", "confidence", "below_threshold", "error"]
    assert list(records[0])[-7:] == ["hand_box", "reading", "digits", "hand_count",
                                       "reviewed_digits", "final_digits", "threshold"]
    assert {r["path"] for r in records} == {*truth, "broken.jpg", "wall.jpg", "group.jpg",
                                            "small.jpg"}
    assert (by_record := {r["path"]: r for r in records})["group.jpg"]["digits"] == "407"
    assert (by_record["group.jpg"]["digit"], by_record["group.jpg"]["hand_count"]) == ("", "3")
    assert (by_record["wall.jpg"]["digit"], by_record["wall.jpg"]["hand_box"],
            by_record["wall.jpg"]["reading"]) == ("", "", "no hand found")
    some = next(row for row in by_path.values() if row.hand)
    assert by_record[some.path]["hand_box"] == " ".join(map(str, some.hand["hands"][0]["box"]))

    out = tmp_path / "errors.json"
    as_json = stack.cli("results", job_id, "--errors", "--format", "json", "--output", str(out))
    assert as_json.returncode == 0, as_json.stderr
    errors = json.loads(out.read_text())
    assert [e["path"] for e in errors] == ["broken.jpg"] and errors[0]["digit"] is None
    assert errors[0]["hand_box"] is None and errors[0]["reading"] is None

    as_json = json.loads(stack.cli("results", job_id, "--format", "json").stdout)
    (grouped,) = [r for r in as_json if r["path"] == "group.jpg"]
    assert [(h["position"], h["digit"]) for h in grouped["hands"]] == [(0, 4), (1, 0), (2, 7)]
    assert grouped["digits"] == "407" and grouped["hand_count"] == 3

    threes = json.loads(stack.cli("results", job_id, "--digit", "3", "--format", "json").stdout)
    assert threes and all(r["digit"] == 3 for r in threes)
    low = json.loads(stack.cli("results", job_id, "--below-threshold", "--format", "json").stdout)
    assert all(r["below_threshold"] and r["confidence"] < 0.9 for r in low)
    assert "wall.jpg" in {r["path"] for r in low}
    table = stack.cli("results", job_id).stdout.splitlines()
    [group_line] = [line for line in table if line.endswith("  group.jpg")]
    assert group_line.split()[0] == "407"  # several hands: their digits, not "-"
    none = stack.cli("results", job_id, "--digit", "3", "--errors")  # a table that is empty
    assert none.stdout.splitlines()[-1] == (
        "# no image matches --digit --errors together (an image must match each)")


def test_empty_or_missing_folder_leaves_no_job(stack, tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("no pictures here")
    sessions = session_factory(stack.database_url)
    stack.cli("db", "upgrade")
    with sessions() as session:
        jobs_before = session.scalar(select(func.count()).select_from(Job))
    for folder in (empty, tmp_path / "missing"):
        result = stack.cli("submit", str(folder))
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "no images" in result.stderr or "no such folder" in result.stderr
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == jobs_before
    import redis

    assert redis.Redis.from_url(stack.broker_url).llen("signdigits") == 0


def _own_data_home(tmp_path) -> dict[str, str]:
    """No SIGNDIGITS_DATABASE_URL: the default SQLite file, under tmp_path, not ~."""
    return {**make_env(), "XDG_DATA_HOME": str(tmp_path)}


def test_run_on_an_empty_folder_fails_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("run", str(tmp_path / "empty"), env=_own_data_home(tmp_path), cwd=tmp_path)
    assert result.returncode != 0
    assert "no images found" in result.stderr


def test_run_does_everything_with_embedded_defaults(dataset, tmp_path):
    truth = copy_sample(dataset, tmp_path / "photos", per_digit=3, seed=2)
    # Threshold 1: every image is below it, so the summary says how to review them.
    run = subprocess.Popen(
        [sys.executable, "-m", "signdigits", "run", str(tmp_path / "photos"), "--workers", "2",
         "--threshold", "1", "--name", "my photos"],
        env=_own_data_home(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr[-3000:]
    # The summary is the output (`run DIR > summary.txt`); progress stays on stderr.
    assert "images/s" in stdout and "30 classified, 30 below threshold 1" in stdout, stdout
    assert "classified," not in stderr and "classifying" in stderr
    job_line = next(line for line in stdout.splitlines() if "(my photos): done" in line)
    job_id = job_line.split("job ", 1)[1].split(" ", 1)[0]
    assert f"review the 30 images below the threshold: signdigits review {job_id}" in stdout
    assert f"http://127.0.0.1:8000/jobs/{job_id}/review" in stdout
    # The embedded broker's address, its fresh password masked.
    broker = next(line for line in stderr.splitlines() if line.startswith("broker: "))
    assert broker.startswith("broker: redis://:***@127.0.0.1:"), broker
    # Its finished job's worker is killed, not shut down warm: none of it may outlive `run`.
    assert _stray_processes(f"local-{run.pid}@") == []
    assert _stray_processes(_server_at(broker.split("@", 1)[1].split("/", 1)[0])) == []
    database = tmp_path / "signdigits" / "signdigits.db"  # the default: $XDG_DATA_HOME/...
    assert f"results database: sqlite:///{database}" in stderr
    rows = session_factory(f"sqlite:///{database}")().scalars(select(Image))
    assert sorted(r.path for r in rows) == sorted(truth)


def _stray_processes(marker: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def _server_at(address: str) -> str:
    """What a Valkey/Redis server listening on ``address`` (host:port) shows as its command
    line ("valkey-server 127.0.0.1:41234"): only that run's broker, not another test's."""
    return f"server {address}$"


def embedded_brokers(pid: int) -> list[str]:
    """The command lines of the Valkey/Redis servers ``pid`` started (its children)."""
    from signdigits.bench import procstat

    return [_command_line(child) for child in procstat.children(pid)
            if "-server" in Path(f"/proc/{child}/comm").read_text()]


def _command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def _hear_ctrl_c() -> None:
    # A test run started in the background by a non-interactive shell (`tests &`) has
    # SIGINT ignored, and a child inherits that: `run` would never see this Ctrl-C and
    # would finish the job (this failed twice so, in a fresh-clone run started with &).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_until_some_are_done(dataset, tmp_path) -> subprocess.Popen:
    """`signdigits run` on 400 photos with one worker, once its first rows are stored."""
    copy_sample(dataset, tmp_path / "photos", per_digit=40, seed=8)
    run = subprocess.Popen(
        [sys.executable, "-m", "signdigits", "run", str(tmp_path / "photos"), "--workers", "1",
         "--batch-size", "8"],
        env=_own_data_home(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=_hear_ctrl_c,
    )
    database = tmp_path / "signdigits" / "signdigits.db"

    def done() -> int:
        found = 0
        if database.exists():
            try:
                with session_factory(f"sqlite:///{database}")() as session:
                    found = session.scalar(
                        select(func.count()).select_from(Image).where(Image.status == "done")
                    ) or 0
            except OperationalError:
                pass  # the file exists before `run` has migrated it: no tables yet
        assert found or run.poll() is None, run.communicate()[1][-2000:]
        return found

    wait_until(done, timeout=120, interval=0.3, message="the job's first stored rows")
    return run


def test_run_fails_in_one_line_when_its_embedded_broker_dies(dataset, tmp_path):
    """The worker lived on in Celery's reconnect loop, and `run` watched a stalled job
    for good (3 min 49 s, until it was sent SIGTERM)."""
    from signdigits.bench import procstat

    run = _run_until_some_are_done(dataset, tmp_path)
    [broker] = [pid for pid in procstat.children(run.pid)  # valkey-server, redis-server
                if "-server" in Path(f"/proc/{pid}/comm").read_text()]
    os.kill(broker, signal.SIGKILL)
    _, stderr = run.communicate(timeout=90)
    assert run.returncode == 1, stderr[-2000:]
    assert "error: the embedded broker exited" in stderr
    assert "signdigits resume" in stderr
    assert _stray_processes(f"local-{run.pid}@") == []  # the worker is gone too


def test_run_stops_everything_on_ctrl_c(dataset, tmp_path):
    run = _run_until_some_are_done(dataset, tmp_path)
    [broker] = embedded_brokers(run.pid)
    database = tmp_path / "signdigits" / "signdigits.db"
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=90)
    assert run.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr
    assert _stray_processes(f"local-{run.pid}@") == []  # the worker is gone
    assert _stray_processes(_server_at(broker.split()[-1])) == []  # so is the broker
    with session_factory(f"sqlite:///{database}")() as session:
        pending = session.scalar(
            select(func.count()).select_from(Image).where(Image.status == "pending")
        )
    assert pending > 0  # stopped part-way, and the rest is still recorded for `resume`


def test_status_follow_shows_a_running_job_to_its_end(stack, dataset, tmp_path):
    """`status --follow JOB`: the bar of a job submitted elsewhere, then its summary; there
    had been no way to watch a job but the `submit --wait` or `run` that started it."""
    from tests.holds import BatchHolds

    copy_sample(dataset, tmp_path / "photos", per_digit=1)
    stack.start_worker(concurrency=1, faults=True, SIGNDIGITS_TEST_HOLD_BATCHES="1")
    holds = BatchHolds(stack.broker_url)
    job_id = stack.submit(tmp_path / "photos", "--batch-size", "4", "--threshold", "1")
    holds.wait_held(job_id, 1)  # batch 0 is stored, batch 1 held: the job is running
    follow = subprocess.Popen(
        [sys.executable, "-m", "signdigits", "status", "--follow", job_id[:8]],
        env=stack.env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True)
    try:
        holds.release(job_id, 1)
        stdout, stderr = follow.communicate(timeout=240)
    finally:
        follow.kill()
    assert follow.returncode == 0, stderr[-3000:]
    assert "classifying" in stderr
    assert "10 classified, 10 below threshold 1" in stdout, stdout
    assert f"signdigits review {job_id}" in stdout
    alone = stack.cli("status", "--follow")
    assert alone.returncode == 2 and "--follow watches one job" in alone.stderr


def test_resume_says_the_batches_that_still_wait_on_the_broker(stack, dataset, tmp_path):
    """With no worker running, `resume` had said "enqueued 0 batches" and nothing of the
    three the broker still held for the job."""
    copy_sample(dataset, tmp_path / "photos", per_digit=1)
    job_id = stack.submit(tmp_path / "photos", "--batch-size", "4")  # 10 images, 3 batches
    done = stack.cli("resume", job_id)
    assert done.returncode == 0, done.stderr
    said = done.stdout + done.stderr
    assert f"job {job_id}: enqueued 0 batches with pending images (never sent)" in said
    assert (f"job {job_id}: 3 batches sent before are still on the broker (queued, or held "
            "by a worker): read when a worker takes them") in said, said
