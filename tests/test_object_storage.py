"""Jobs whose folder is s3://bucket/prefix, against a real S3 server (SeaweedFS's
``weed mini``), real Valkey, real databases and real Celery workers (docs/object-storage.md)."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Stack, account, sample_images
from tests.figures import record
from tests.s3_server import SECRET_KEY, S3Server
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3"))
    server.start()
    yield server
    server.stop()


def upload_sample(s3: S3Server, bucket: str, prefix: str, dataset: Path, per_digit: int,
                  *, seed: int = 1) -> dict[str, int]:
    """Dataset photos as ``prefix<digit>/<name>`` objects; key under the prefix -> digit."""
    client = s3.client()
    truth = {}
    for path, digit in sample_images(dataset, per_digit, seed=seed):
        relative = f"{digit}/{path.name}"
        client.put_object(Bucket=bucket, Key=prefix + relative, Body=path.read_bytes())
        truth[relative] = digit
    return truth


def stack_for(s3: S3Server, redis_url: str, database_url: str, tmp_path: Path,
              **settings) -> Stack:
    stack = Stack(redis_url, database_url, tmp_path, **settings)
    stack.env.update(s3.env())
    return stack


def test_a_prefix_of_200_photos_through_real_workers(s3, dataset, redis_url, postgres_url,
                                                     tmp_path):
    """The producer lists the prefix, the workers read each object themselves: one row per
    image, its path the key under the prefix, nothing else listed, no secret anywhere."""
    bucket = s3.new_bucket()
    truth = upload_sample(s3, bucket, "batch/", dataset, per_digit=20)
    client = s3.client()
    for key in ("batch/notes.txt", "batch/.hidden/1.jpg", "batch2/1.jpg", "other/1.jpg"):
        client.put_object(Bucket=bucket, Key=key, Body=b"not listed")
    stack = stack_for(s3, redis_url, postgres_url, tmp_path, batch_size=32)
    stack.start_worker(concurrency=2)
    try:
        started = time.monotonic()
        job_id = stack.submit(f"s3://{bucket}/batch")
        job = stack.wait_for(job_id, timeout=300)
        seconds = time.monotonic() - started
        rows = stack.rows(job_id)
    finally:
        stack.stop()
    assert job.root == f"s3://{bucket}/batch/"
    assert not job.inline  # no bytes in the messages
    assert sorted(r.path for r in rows) == sorted(truth)
    assert all(r.status == "done" for r in rows), {r.path: r.error for r in rows if r.error}
    assert all(r.etag and r.etag.strip('"') for r in rows)  # recorded from the listing
    correct = sum(r.digit == truth[r.path] for r in rows)
    assert correct >= 0.95 * len(truth), f"{correct}/{len(truth)}"
    # The credentials stay in the environment: not in a row, the job or a worker's log.
    stored = " ".join(f"{r.path} {r.error} {r.etag}" for r in rows) + job.root
    assert SECRET_KEY not in stored
    assert all(SECRET_KEY not in w.log.read_text(errors="replace") for w in stack.workers)
    record("s3 prefix, 200 photos, 2 worker processes", {
        **account(rows, list(truth)), "right": correct, "seconds": round(seconds, 1)})


def test_bad_storage_is_one_line_and_records_nothing(s3, redis_url, sqlite_url, tmp_path):
    bucket = s3.new_bucket()
    s3.client().put_object(Bucket=bucket, Key="in/1.jpg", Body=b"x")
    stack = stack_for(s3, redis_url, sqlite_url, tmp_path)
    url = f"s3://{bucket}/in"
    cases = {
        "wrong key": ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, url,
                      "the object storage refused the credentials (SignatureDoesNotMatch"),
        "unknown key id": ({"AWS_ACCESS_KEY_ID": "nobody"}, url,
                           "the object storage refused the credentials (InvalidAccessKeyId"),
        "missing bucket": ({}, "s3://no-such-bucket-here/in", "no such bucket"),
        "no server": ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, url,
                      "cannot reach the object storage"),
        "not a URL": ({}, "s3://x/in", "not an s3://bucket/prefix URL"),
        "dots": ({}, f"s3://{bucket}/in/../etc", "'..' part"),
        "empty prefix": ({}, f"s3://{bucket}/none", "no images found"),
        "outside the roots": ({"SIGNDIGITS_ALLOWED_ROOTS": f'["s3://{bucket}/other", "/srv"]'},
                              url, "outside SIGNDIGITS_ALLOWED_ROOTS"),
        "inline": ({}, url, "--inline ships"),
    }
    for name, (env, target, expected) in cases.items():
        args = ("submit", target, *(("--inline",) if name == "inline" else ()))
        result = _with(stack, env).cli(*args, timeout=60)
        output = (result.stdout + result.stderr).strip()
        assert result.returncode != 0, (name, output)
        assert expected in output, (name, output)
        assert len(output.splitlines()) == 1 and "Traceback" not in output, (name, output)
        assert SECRET_KEY not in output
    from sqlalchemy import func, select

    from signdigits.db.models import Job

    with stack.sessions()() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def _with(stack: Stack, env: dict[str, str]) -> Stack:
    copy = Stack.__new__(Stack)
    copy.__dict__.update(stack.__dict__)
    copy.env = {**stack.env, **env}
    return copy


def _bomb_png(width: int, height: int, padding: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height``, its body ``padding`` bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"\0" * padding)
            + chunk(b"IEND", b""))


def test_objects_changed_after_submit_and_over_the_caps_get_error_rows(
        s3, dataset, redis_url, sqlite_url, tmp_path):
    """Deleted after submit: `object not found`; replaced: refused by its ETag; over the
    byte or pixel cap, empty: the folder's messages. The other images are classified."""
    from PIL import Image

    bucket = s3.new_bucket()
    truth = upload_sample(s3, bucket, "p/", dataset, per_digit=1, seed=3)
    client = s3.client()
    big = io.BytesIO()
    Image.effect_noise((1200, 1200), 64).convert("RGB").save(big, "PNG")
    extra = {"big.png": big.getvalue(), "bomb.png": _bomb_png(100_000, 100_000, 200_000),
             "empty.jpg": b""}
    for name, body in extra.items():
        client.put_object(Bucket=bucket, Key=f"p/{name}", Body=body)
    cap = len(big.getvalue()) - 1
    stack = stack_for(s3, redis_url, sqlite_url, tmp_path, max_file_bytes=str(cap))
    try:
        job_id = stack.submit(f"s3://{bucket}/p")  # no worker yet: every row pending
        deleted, replaced, *_ = sorted(truth)
        client.delete_object(Bucket=bucket, Key=f"p/{deleted}")
        other = next(p for p, d in sample_images(dataset, 1, seed=4) if d != truth[replaced])
        client.put_object(Bucket=bucket, Key=f"p/{replaced}", Body=other.read_bytes())
        stack.start_worker(concurrency=1)
        stack.wait_for(job_id)
        rows = {r.path: r for r in stack.rows(job_id)}
    finally:
        stack.stop()
    errors = {path: row.error for path, row in rows.items() if row.status == "error"}
    assert errors == {
        deleted: "object not found",
        replaced: "object replaced after submit (its ETag changed; refused)",
        "big.png": f"file is {cap + 1:,} bytes, over the {cap:,}-byte cap",
        "bomb.png": "image is 10000000000 pixels, over the pixel limit (refused before "
                    "decoding)",
        "empty.jpg": "empty file (0 bytes)",
    }
    done = {path for path, row in rows.items() if row.status == "done"}
    assert done == set(truth) - {deleted, replaced}


def test_a_storage_outage_mid_job_is_waited_out(s3, dataset, redis_url, sqlite_url, tmp_path):
    """The S3 server stops mid-job and comes back: the workers wait, as for the database,
    and every image gets its result, none an error."""
    bucket = s3.new_bucket()
    truth = upload_sample(s3, bucket, "o/", dataset, per_digit=6, seed=5)
    stack = stack_for(s3, redis_url, sqlite_url, tmp_path, batch_size=4)
    worker = stack.start_worker(concurrency=1)
    try:
        job_id = stack.submit(f"s3://{bucket}/o")
        stack.wait_for(job_id, until=lambda counts: counts.get("done", 0) >= 8)
        stopped = time.monotonic()
        s3.stop()
        wait_until(lambda: worker.log.read_text(errors="replace").count(
            "object storage unavailable") >= 2, timeout=60,
            message="the worker to wait out the outage", details=lambda: worker.log_tail())
        down = time.monotonic() - stopped
        s3.start()
        back = time.monotonic()
        stack.wait_for(job_id, timeout=180)
        finished = time.monotonic() - back
        rows = stack.rows(job_id)
    finally:
        stack.stop()
    assert [r.error for r in rows if r.status != "done"] == []
    assert sorted(r.path for r in rows) == sorted(truth)
    record("s3 outage mid-job", {**account(rows, list(truth)), "down s": round(down, 1),
                                 "finished s after the restart": round(finished, 1)})


def test_a_worker_without_credentials_passes_the_batches_on(s3, dataset, redis_url,
                                                             sqlite_url, tmp_path):
    """One worker has no S3 credentials: it had failed every batch it took, five times
    over, into error rows, with a worker that could read them beside it. It now puts each
    back, uncounted, says why on the broker, and the other worker reads every image."""
    bucket = s3.new_bucket()
    truth = upload_sample(s3, bucket, "c/", dataset, per_digit=2, seed=7)
    stack = stack_for(s3, redis_url, sqlite_url, tmp_path, batch_size=4)
    blind = stack.start_worker(concurrency=1, AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="",
                               AWS_EC2_METADATA_DISABLED="true")
    try:
        job_id = stack.submit(f"s3://{bucket}/c")
        wait_until(lambda: f"cannot read job {job_id}'s objects: no S3 credentials" in
                   blind.log.read_text(errors="replace"), timeout=60,
                   message="the worker without credentials to pass a batch on",
                   details=lambda: blind.log_tail())
        status = stack.cli("status", job_id)
        stack.start_worker(concurrency=1)
        stack.wait_for(job_id, timeout=180)
        rows = stack.rows(job_id)
    finally:
        stack.stop()
    assert sorted(r.path for r in rows) == sorted(truth)
    assert [r.error for r in rows if r.status != "done"] == []
    assert all(r.attempts == 1 for r in rows), {r.path: r.attempts for r in rows}
    assert "cannot read the job's objects: no S3 credentials" in status.stdout, status.stdout


def test_the_job_pages_pictures_of_objects(s3, dataset, redis_url, sqlite_url, tmp_path,
                                           monkeypatch):
    """The web shows an s3:// job's photos as its workers read them: the object the
    listing saw, a replaced one refused in one line (422), the storage down a 503 with
    Retry-After; never a 500 (the web had read every s3:// row's path as a local file)."""
    from PIL import Image

    from signdigits.config.settings import Settings
    from tests.web_server import serving

    bucket = s3.new_bucket()
    truth = upload_sample(s3, bucket, "w/", dataset, per_digit=1, seed=6)
    stack = stack_for(s3, redis_url, sqlite_url, tmp_path)
    stack.start_worker(concurrency=1)
    try:
        job_id = stack.submit(f"s3://{bucket}/w")
        stack.wait_for(job_id)
        rows = {r.path: r for r in stack.rows(job_id)}
    finally:
        stack.stop()
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    shown, replaced = sorted(truth)[:2]
    settings = Settings(database_url=sqlite_url, broker_url="redis://127.0.0.1:1/0",
                        upload_dir=tmp_path / "uploads")
    with serving(settings) as web:
        thumbnail = web.get(f"/api/images/{rows[shown].id}/thumbnail")
        assert thumbnail.status_code == 200, thumbnail.text
        assert Image.open(io.BytesIO(thumbnail.content)).size[0] > 0
        assert web.get(f"/api/images/{rows[shown].id}/annotated.jpg").status_code == 200
        s3.client().put_object(Bucket=bucket, Key=f"w/{replaced}",
                               Body=(dataset / "0" / sorted(
                                   p.name for p in (dataset / "0").iterdir())[0]).read_bytes())
        refused = web.get(f"/api/images/{rows[replaced].id}/thumbnail")
        assert refused.status_code == 422
        assert "object replaced after submit" in refused.json()["detail"]
        s3.stop()
        try:
            down = web.get(f"/api/images/{rows[shown].id}/thumbnail")
        finally:
            s3.start()
        assert down.status_code == 503 and down.headers["Retry-After"] == "5", down.text
        assert "object storage" in down.json()["detail"]
