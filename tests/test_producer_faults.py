"""The producer against what goes wrong while it walks: odd names, unreachable folders,
a broker that fills up, and a producer that dies. Real Valkey, databases, workers and
`signdigits submit` processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import Stack, copy_sample, sample_images
from tests.test_scan import make_deep, remove_deep
from tests.waiting import wait_until

DROP_FILE_CAPABILITIES = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


@pytest.fixture
def stack(redis_url, database_url, tmp_path):
    stack = Stack(redis_url, database_url, tmp_path)
    yield stack
    stack.stop()
    import redis

    redis.Redis.from_url(stack.broker_url).flushdb()


def _submit_process(stack: Stack, *args: str, **env: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "signdigits", "submit", *args]
    if os.geteuid() == 0:
        command = [*DROP_FILE_CAPABILITIES, *command]  # so a folder's mode applies to root
    return subprocess.Popen(command, env={**stack.env, **env}, cwd=stack.tmp, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)


def test_odd_names_unreadable_folders_and_deep_paths_all_get_rows(stack, dataset, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (good, digit), (other, other_digit) = sample_images(dataset, 1, seed=5)[3:5]
    shutil.copyfile(good, photos / "plain.jpg")
    os.link(good, os.fsencode(photos) + b"/caf\xe9.jpg")  # Latin-1, not UTF-8
    (photos / "locked").mkdir()
    shutil.copyfile(good, photos / "locked" / "hidden-by-mode.jpg")
    (photos / "locked").chmod(0)
    deep = make_deep(photos, 2500, "d", {2500: Path(other).read_bytes()})  # a 5,000-byte path
    try:
        submit = _submit_process(stack, str(photos))
        out, err = submit.communicate(timeout=120)
        assert submit.returncode == 0, err
        job_id = out.strip().splitlines()[0]
        stack.start_worker(concurrency=1)
        stack.wait_for(job_id, timeout=180)
        rows = {r.path: r for r in stack.rows(job_id)}
        assert set(rows) == {"plain.jpg", "caf\\xe9.jpg", "locked/", f"{deep}/img.jpg"}
        assert rows["caf\\xe9.jpg"].raw_path == b"caf\xe9.jpg"
        for name, truth in (("plain.jpg", digit), ("caf\\xe9.jpg", digit),
                            (f"{deep}/img.jpg", other_digit)):
            assert (rows[name].status, rows[name].digit) == ("done", truth), rows[name].error
        assert rows["locked/"].status == "error"
        assert "permission denied" in rows["locked/"].error
        status = stack.cli("status", job_id).stdout
        assert "done with errors" in status, status
        shown = stack.cli("results", job_id, "--format", "csv").stdout
        assert f"caf\\xe9.jpg,{digit}," in shown and "locked/,," in shown, shown
    finally:
        (photos / "locked").chmod(0o755)
        remove_deep(photos)


def _queue_bytes(stack: Stack) -> tuple[int, int]:
    """What the broker holds for workers: bytes of queued and unacknowledged messages,
    and the largest single message."""
    import redis

    client = redis.Redis.from_url(stack.broker_url)
    items = client.lrange("signdigits", 0, -1) + list(client.hgetall("unacked").values())
    return sum(len(i) for i in items), max((len(i) for i in items), default=0)


def _wait_for_line(stream, needle: str, timeout: float) -> str:
    """The first line of ``stream`` holding ``needle``, read in a thread, with a deadline."""
    found: list[str] = []
    done = threading.Event()

    def read() -> None:
        for line in stream:
            if needle in line:
                found.append(line)
                done.set()
                return
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(timeout) and found, f"no line with {needle!r} in {timeout}s"
    return found[0]


def _messages_per_batch(stack: Stack, job_id: str) -> dict[int, int]:
    import redis

    counts: dict[int, int] = {}
    for item in redis.Redis.from_url(stack.broker_url).lrange("signdigits", 0, -1):
        args = json.loads(json.loads(item)["headers"]["argsrepr"].replace("'", '"'))
        if args[0] == job_id:
            counts[args[1]] = counts.get(args[1], 0) + 1
    return counts


def test_inline_producer_waits_at_the_cap_and_a_killed_one_is_resumed(stack, dataset,
                                                                      tmp_path):
    truth = copy_sample(dataset, tmp_path / "photos", per_digit=12)  # 120 images
    cap = 250_000  # a few batches of 8 photos
    submit = _submit_process(stack, str(tmp_path / "photos"), "--inline", "--batch-size",
                             "8", SIGNDIGITS_INLINE_MAX_QUEUED_BYTES=str(cap))
    try:
        line = _wait_for_line(submit.stderr, "waiting for workers", timeout=120)
        assert "SIGNDIGITS_INLINE_MAX_QUEUED_BYTES" in line
        queued, largest = _queue_bytes(stack)
        assert 0 < queued <= cap + largest, (queued, cap, largest)
        from sqlalchemy import select

        from signdigits.db.models import Job

        with stack.sessions()() as session:
            root = str((tmp_path / "photos").resolve())
            job_id = session.scalars(select(Job.id).where(Job.root == root)).one()
        assert "submitting" in stack.cli("status", job_id).stdout
    finally:
        submit.send_signal(signal.SIGKILL)
        submit.wait()
    status = stack.cli("status", job_id).stdout
    assert "submission interrupted" in status and "resume" in status, status
    before = _messages_per_batch(stack, job_id)

    resumed = stack.cli("resume", job_id)  # no worker yet, and the default cap: no wait
    assert resumed.returncode == 0, resumed.stderr
    assert "walk finished" in resumed.stderr, resumed.stderr
    after = _messages_per_batch(stack, job_id)
    with stack.sessions()() as session:
        job = session.get(Job, job_id)
        assert job.submitted_at is not None and job.total_images == len(truth)
    assert set(after) == set(range(job.total_batches)), after
    assert set(after.values()) == {1}, f"a batch enqueued twice: {after}"  # not doubled
    assert set(before) < set(after)

    stack.start_worker(concurrency=1)
    stack.wait_for(job_id, timeout=180)
    rows = stack.rows(job_id)
    assert sorted(r.path for r in rows) == sorted(truth)
    assert all(r.status == "done" for r in rows)  # each image read once, from its message
    correct = sum(r.digit == truth[r.path] for r in rows)
    assert correct >= 0.95 * len(rows), f"{correct}/{len(rows)}"  # the bytes were the photos
    assert "done" in stack.cli("status", job_id).stdout


def test_inline_queue_stays_under_the_cap_while_workers_run(stack, dataset, tmp_path):
    copy_sample(dataset, tmp_path / "photos", per_digit=10)
    cap = 250_000
    stack.start_worker(concurrency=1)
    submit = _submit_process(stack, str(tmp_path / "photos"), "--inline", "--batch-size",
                             "8", SIGNDIGITS_INLINE_MAX_QUEUED_BYTES=str(cap))
    peak = largest = 0

    def sampled_until_the_walk_ends() -> bool:  # as often as the broker answers
        nonlocal peak, largest
        queued, biggest = _queue_bytes(stack)
        peak, largest = max(peak, queued), max(largest, biggest)
        return submit.poll() is not None

    wait_until(sampled_until_the_walk_ends, timeout=180, interval=0,
               message="the --inline producer to finish its walk")
    out, err = submit.communicate(timeout=60)
    assert submit.returncode == 0, err
    job_id = out.strip().splitlines()[0]
    stack.wait_for(job_id, timeout=180)
    assert 0 < peak <= cap + largest, (peak, cap, largest)
    assert set(stack.counts(job_id)) == {"done"}


def test_submit_with_the_broker_down_records_nothing(stack, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    stack.env["SIGNDIGITS_BROKER_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
    result = stack.cli("submit", str(tmp_path / "photos"))
    assert result.returncode != 0
    assert "cannot reach the broker at 'redis://127.0.0.1:1/0'" in result.stderr
    assert "nothing was recorded" in result.stderr
    from sqlalchemy import inspect, select

    from signdigits.db.models import Job

    with stack.sessions()() as session:
        # The CLI asks the broker before it opens the database: no tables is "nothing" too.
        if "jobs" in inspect(session.connection()).get_table_names():
            assert session.scalars(
                select(Job).where(Job.root == str(tmp_path / "photos"))).all() == []

