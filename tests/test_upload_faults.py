"""A failed upload leaves nothing behind; a killed ``serve`` is repaired when it starts
again (issue 32, items 4 and 3).

Real processes: a private Valkey frozen with SIGSTOP, a PostgreSQL URL nothing answers
on, a real ``signdigits serve`` killed with SIGKILL mid-upload and started again, a real
worker to finish the job its restart resumes.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from signdigits.config.settings import Settings
from signdigits.db.models import Batch, Image, Job
from signdigits.db.session import session_factory
from tests.conftest import REPO, Stack, start_valkey, wait_for_http
from tests.figures import record
from tests.waiting import wait_until
from tests.web_server import serving


def _files(count: int, folder: str = "") -> list[tuple[str, tuple[str, bytes]]]:
    """``count`` one-byte "photos" as multipart fields (a worker gives each an error row)."""
    return [("files", (f"{folder}{i:05d}.jpg", b"x")) for i in range(count)]


def _upload_folders(uploads: Path) -> list[Path]:
    return sorted(uploads.iterdir()) if uploads.exists() else []


def _jobs(database_url: str) -> list[Job]:
    with session_factory(database_url)() as session:
        return list(session.scalars(select(Job)))


def _rows(database_url: str, job_id: str) -> dict[str, int]:
    with session_factory(database_url)() as session:
        return {str(status): n for status, n in session.execute(
            select(Image.status, func.count()).where(Image.job_id == job_id)
            .group_by(Image.status)).all()}


@pytest.mark.parametrize("when", ["before the job", "mid-walk", "after a batch was sent"])
def test_a_frozen_broker_leaves_no_upload_behind(when, tmp_path):
    """Frozen (SIGSTOP) before the upload (the broker check times out: no job yet), once
    its job exists, or once a batch went out (a send times out mid-walk): 503, no
    folder, no pending row; a job some of whose batches went out stays, cancelled."""
    broker = start_valkey()
    database_url = f"sqlite:///{tmp_path / 'results.db'}"
    # One image per batch: the walk sends 3,000 messages, seconds in which to freeze it.
    settings = Settings(broker_url=broker.url, database_url=database_url, batch_size=1,
                        upload_dir=tmp_path / "uploads")
    answers: queue.SimpleQueue = queue.SimpleQueue()
    try:
        with serving(settings) as client:
            def upload() -> None:
                answers.put(client.post("/api/jobs", files=_files(3000)))

            if when == "before the job":
                os.kill(broker.process.pid, signal.SIGSTOP)
                upload()
            else:
                threading.Thread(target=upload, daemon=True).start()
                wait_until(lambda: _jobs(database_url) if when == "mid-walk"
                           else _sent_batches(database_url), timeout=60, interval=0.01,
                           message=f"the upload's job {when}")
                os.kill(broker.process.pid, signal.SIGSTOP)
            answer = answers.get(timeout=120)
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
        broker.stop()
    assert answer.status_code == 503, answer.text
    detail = answer.json()["detail"]
    assert _upload_folders(tmp_path / "uploads") == [], detail
    jobs = _jobs(database_url)
    record(f"upload of 3,000 files with the broker frozen {when}", {
        "status": answer.status_code, "folders left": 0, "jobs kept": len(jobs)})
    if when == "before the job":
        assert "nothing was recorded" in detail and jobs == [], detail
        return
    assert detail.startswith("the upload could not be submitted ("), detail
    if when == "after a batch was sent":
        assert len(jobs) == 1, detail
    if jobs:  # some batches were sent before the freeze: kept, cancelled, failed
        [job] = jobs
        assert f"job {job.id} was cancelled and the files removed" in detail, detail
        assert job.failure and "pending" not in _rows(database_url, job.id)
    else:
        assert detail.endswith("nothing was kept"), detail


def _sent_batches(database_url: str) -> int:
    with session_factory(database_url)() as session:
        return session.scalar(select(func.count()).select_from(Batch)
                              .where(Batch.enqueued_at.is_not(None))) or 0


def test_an_unreachable_database_leaves_no_upload_behind(redis_url, tmp_path):
    """PostgreSQL that nothing answers on (a port with no server): 503, no folder."""
    from signdigits.bench.web_thread import web_in_thread
    from signdigits.stack.valkey import free_port

    nowhere = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    settings = Settings(broker_url=redis_url.rsplit("/", 1)[0] + "/15", database_url=nowhere,
                        upload_dir=tmp_path / "uploads")
    with web_in_thread(settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(3):
            answer = client.post("/api/jobs", files=_files(20))
            assert answer.status_code == 503, answer.text
            assert answer.json()["detail"] == "database unavailable; try again"
    assert _upload_folders(tmp_path / "uploads") == []


class Serve:
    """A real `signdigits serve` on the test's broker and SQLite file, its output read
    line by line as it comes."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        from signdigits.stack.valkey import free_port

        self.port = free_port()
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "signdigits", "serve", "--port", str(self.port)],
            cwd=tmp, env={**env, "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        threading.Thread(target=self._read, daemon=True).start()
        wait_for_http(f"{self.url}/healthz", timeout=120)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str, timeout: float = 60) -> str:
        return wait_until(lambda: next((line for line in self.lines if text in line), None),
                          timeout=timeout, interval=0.05, message=f"serve to say {text!r}",
                          details=lambda: "\n".join(self.lines[-30:]))

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _post_in_background(url: str, **request) -> None:
    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):  # killed under it: the test's point
            httpx.post(f"{url}/api/jobs", timeout=300, **request)

    threading.Thread(target=post, daemon=True).start()


def _age(folder: Path, seconds: float) -> None:
    """Everything in ``folder`` last written ``seconds`` ago (an upload killed long ago)."""
    then = time.time() - seconds
    for path, folders, files in os.walk(folder, topdown=False):
        for name in files + folders:
            os.utime(os.path.join(path, name), (then, then), follow_symlinks=False)
        os.utime(path, (then, then))


def test_a_serve_killed_mid_unpacking_leaves_a_folder_its_restart_removes(redis_url,
                                                                          tmp_path):
    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'results.db'}", tmp_path,
                  upload_dir=str(tmp_path / "uploads"))
    uploads = tmp_path / "uploads"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:  # 20,000 tiny photos: seconds to unpack
        for i in range(20_000):
            zipped.writestr(f"{i % 10}/{i:05d}.jpg", b"x")
    serve = Serve(tmp_path, stack.env)
    try:  # first an upload that becomes a job: its folder is never removed, however old
        owned = httpx.post(f"{serve.url}/api/jobs", files=_files(3), timeout=60)
        assert owned.status_code == 201, owned.text
        _post_in_background(serve.url, files={"files": ("photos.zip", archive.getvalue())})
        def unpacking() -> Path | None:  # a tenth of the files out: ~2,000
            return next((f for f in _upload_folders(uploads)
                         if (f / "0").is_dir() and len(os.listdir(f / "0")) >= 200), None)

        killed = wait_until(unpacking, timeout=120, interval=0.01,
                            message="the unpacking to be under way")
        serve.kill()
    finally:
        serve.stop()
    left = sum(len(files) for _, _, files in os.walk(killed))
    assert left and str(killed) not in {job.root for job in _jobs(stack.database_url)}
    mine = uploads / "mine"  # not a name the server gives: someone else's, kept
    (mine / "3").mkdir(parents=True)
    for folder in _upload_folders(uploads):
        _age(folder, 2 * 3600)
    fresh = uploads / ("f" * 32)  # another serve's upload, unpacking right now: kept
    (fresh / "3").mkdir(parents=True)
    (fresh / "3" / "a.jpg").write_bytes(b"x")
    serve = Serve(tmp_path, stack.env)
    try:
        line = serve.said(f"removed upload folder {killed}: no job owns it")
    finally:
        serve.stop()
    assert not killed.exists(), line
    assert Path(owned.json()["folder"]).exists() and fresh.exists() and mine.exists()
    assert sum("removed upload folder" in x for x in serve.lines) == 1, serve.lines
    record("serve killed mid-unpacking, then started again", {
        "files left by the kill": left, "removed at restart": 1,
        "kept (a job's, one in its grace hour, one not named by serve)": 3})


@pytest.mark.parametrize("kind", ["upload", "folder"])
def test_a_serve_killed_mid_submit_finishes_the_job_when_it_starts_again(kind, redis_url,
                                                                         tmp_path):
    """The walk (of an upload, or of a folder job serve was asked for) is held at
    SIGNDIGITS_INLINE_MAX_QUEUED_BYTES (no worker yet): killed there, the job has part of
    its rows; started again (and a worker with it), serve finishes the walk and every
    image gets its row. The upload's photo over the per-file cap, which has no file in
    the folder the walk resumes, keeps its error row: it was recorded with the job."""
    count = 400
    database_url = f"sqlite:///{tmp_path / 'results.db'}"
    stack = Stack(redis_url, database_url, tmp_path, upload_dir=str(tmp_path / "uploads"),
                  batch_size="8", inline_max_queued_bytes="1", inline="true",
                  max_file_bytes="1000")
    serve = Serve(tmp_path, stack.env)
    try:
        if kind == "upload":
            _post_in_background(serve.url, files=[*_files(count - 1, "7/"),
                                                  ("files", ("7/pano.jpg", bytes(2000)))])
        else:  # a folder job's walk goes on in serve after its answer
            photos = tmp_path / "photos"
            photos.mkdir()
            for i in range(count):
                (photos / f"{i:05d}.jpg").write_bytes(b"x")
            _post_in_background(serve.url, json={"folder": str(photos)})

        def held() -> Job | None:  # its first batch sent: the walk waits for a worker
            return _jobs(database_url)[0] if _sent_batches(database_url) else None

        job = wait_until(held, timeout=120, interval=0.02, message="the walk to be held")
        serve.kill()
    finally:
        serve.stop()
    before = _rows(database_url, job.id)
    assert sum(before.values()) < count, before  # a job with part of its rows
    stack.start_worker(concurrency=1)
    restarted = time.monotonic()
    serve = Serve(tmp_path, stack.env)
    try:
        serve.said(f"job {job.id}: resuming its interrupted submission")
        serve.said(f"job {job.id}: submission finished", timeout=120)
        finished_job = stack.wait_for(job.id, timeout=120)
        finished = time.monotonic() - restarted
    finally:
        serve.stop()
        stack.stop()
    rows = _rows(database_url, job.id)
    assert sum(rows.values()) == count and "pending" not in rows, rows
    if kind == "upload":
        with session_factory(database_url)() as session:
            assert session.scalar(select(Image.error).where(
                Image.job_id == job.id, Image.path == "7/pano.jpg")) == (
                "file is 2,000 bytes, over the 1,000-byte cap")
    assert finished_job.total_images == count and finished_job.submitted_at is not None
    record(f"serve killed mid-submit of {'an upload' if kind == 'upload' else 'a folder job'}, "
           "then started again", {
        "rows when killed": sum(before.values()), "rows after": count,
        "pending": 0, "finished after the restart s": round(finished, 1)})
