"""Awkward files among good ones, and messages nobody should trust.

Each bad file gets an error row (or, where it is a real picture in an odd format, a
correct prediction) while the rest of the job and the worker go on."""

from __future__ import annotations

import io
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import Stack, account, sample_images
from tests.figures import record
from tests.test_photo_formats import _heic, _png_header_only
from tests.waiting import wait_until


def _odd_formats(source: Path, folder: Path) -> dict[str, str]:
    """The same real photo as alpha PNG, 16-bit PNG, CMYK JPEG, animated GIF, EXIF-rotated,
    and as a phone's HEIC (turned in its container and its EXIF) and an AVIF."""
    rgb = Image.open(source).convert("RGB")
    made = {}
    rgba = rgb.convert("RGBA")
    rgba.putalpha(255)
    rgba.save(folder / "alpha.png")
    made["alpha.png"] = "predicted"
    deep = (np.asarray(rgb.convert("L"), np.uint16) * 257)
    Image.fromarray(deep).save(folder / "deep16.png")
    made["deep16.png"] = "predicted"
    rgb.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    made["cmyk.jpg"] = "predicted"
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 100, 3), np.uint8))
    rgb.save(folder / "animated.gif", save_all=True, append_images=[noise], duration=100)
    made["animated.gif"] = "predicted"
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    rgb.transpose(Image.Transpose.ROTATE_90).save(folder / "exif-rotated.jpg", quality=95,
                                                  exif=exif)
    made["exif-rotated.jpg"] = "predicted"
    (folder / "phone.HEIC").write_bytes(_heic(rgb.transpose(Image.Transpose.ROTATE_90),
                                              exif=exif.tobytes()))
    made["phone.HEIC"] = "predicted"
    rgb.save(folder / "photo.avif", quality=90)
    made["photo.avif"] = "predicted"
    return made


def test_bad_files_get_error_rows_and_the_job_goes_on(postgres_url, redis_url, dataset,
                                                       tmp_path):
    photos, outside = tmp_path / "photos", tmp_path / "outside"
    photos.mkdir()
    outside.mkdir()
    good = sample_images(dataset, 2, seed=21)
    expected: dict[str, str] = {}
    truth: dict[str, int] = {}
    for path, digit in good:
        name = f"{digit}-{path.name}"
        shutil.copyfile(path, photos / name)
        expected[name], truth[name] = "predicted", digit
    odd_source, odd_digit = good[0]
    for name, outcome in _odd_formats(odd_source, photos).items():
        expected[name], truth[name] = outcome, odd_digit
    for name in ("with space.jpg", "ünïcødé ✋.jpg", "new\nline.jpg"):
        shutil.copyfile(good[1][0], photos / name)
        expected[name], truth[name] = "predicted", good[1][1]

    (photos / "zero.jpg").write_bytes(b"")
    expected["zero.jpg"] = "empty file"
    jpeg = io.BytesIO()
    Image.open(good[2][0]).resize((400, 400)).save(jpeg, "JPEG", quality=95)
    (photos / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    expected["truncated.jpg"] = "cannot decode"
    (photos / "page.jpg").write_text("<!doctype html><html><body>hello</body></html>")
    expected["page.jpg"] = "not an image"
    (photos / "notes.jpg").write_text("just text")
    expected["notes.jpg"] = "not an image"
    (photos / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    expected["bomb.png"] = "pixel limit"
    (photos / "huge.jpg").write_bytes(Path(good[3][0]).read_bytes() + b"\0" * 1_100_000)
    expected["huge.jpg"] = "over the 1,000,000-byte cap"
    (photos / "locked.jpg").write_bytes(Path(good[4][0]).read_bytes())
    (photos / "locked.jpg").chmod(0)
    expected["locked.jpg"] = "permission denied"
    (photos / "deleted-later.jpg").write_bytes(Path(good[5][0]).read_bytes())
    expected["deleted-later.jpg"] = "file not found"
    (photos / "swapped.jpg").write_bytes(Path(good[6][0]).read_bytes())
    expected["swapped.jpg"] = "outside the job's folder"
    shutil.copyfile(good[7][0], outside / "secret.jpg")
    os.symlink(outside / "secret.jpg", photos / "link-out.jpg")  # never followed
    expected["link-out.jpg"] = "symlink to a file outside the job's folder"

    stack = Stack(redis_url, postgres_url, tmp_path, max_file_bytes=1_000_000)
    job_id = stack.submit(photos, "--batch-size", "8")  # no worker yet: files can change
    (photos / "deleted-later.jpg").unlink()
    (photos / "swapped.jpg").unlink()
    os.symlink(outside / "secret.jpg", photos / "swapped.jpg")
    as_root = {"DROP_FILE_CAPABILITIES": "1"} if os.geteuid() == 0 else {}
    stack.start_worker(concurrency=2, **as_root)
    stack.wait_for(job_id, timeout=180)
    rows = {r.path: r for r in stack.rows(job_id)}
    assert set(rows) == set(expected), set(rows) ^ set(expected)
    for name, outcome in expected.items():
        row = rows[name]
        if outcome == "predicted":
            assert row.status == "done", (name, row.error)
            assert row.digit == truth[name], (name, row.digit, truth[name])
        else:
            assert row.status == "error" and outcome in row.error, (name, row.error)
    figures = account(list(rows.values()), list(expected))
    figures["error rows"] = sum(r.status == "error" for r in rows.values())
    figures["predicted"] = sum(r.status == "done" for r in rows.values())
    record("bad inputs among good images", figures)
    assert figures["missing"] == 0 and figures["duplicates"] == 0
    assert stack.worker.process.poll() is None  # the worker went on
    stack.stop()


@pytest.fixture
def stack(redis_url, tmp_path):
    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    yield stack
    stack.stop()


def test_pickled_message_is_rejected_and_nothing_in_it_runs(stack, dataset, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    worker = stack.start_worker(concurrency=1)
    stack.app().send_task("signdigits.classify_batch", args=[Exploit(), 0],
                          serializer="pickle")
    # The worker's refusal is the event; the payload would have run before it, if at all.
    wait_until(lambda: "disallowed" in worker.log.read_text(errors="replace").lower(),
               timeout=60, message="the worker to refuse the pickled message",
               details=worker.log_tail)
    assert not marker.exists()
    # The worker is unharmed and keeps working.
    (tmp_path / "photos").mkdir()
    shutil.copyfile(sample_images(dataset, 1)[0][0], tmp_path / "photos" / "one.jpg")
    job_id = stack.submit(tmp_path / "photos")
    stack.wait_for(job_id, timeout=60)
    assert stack.counts(job_id) == {"done": 1}


def test_forged_messages_cannot_reach_outside_files(stack, dataset, tmp_path):
    stack.start_worker(concurrency=1)
    app = stack.app()
    app.send_task("signdigits.classify_batch", args=[uuid.uuid4().hex, 0])  # no such job
    app.send_task("signdigits.classify_batch", args=["../../etc", "passwd"])  # garbage
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copyfile(sample_images(dataset, 1)[0][0], photos / "a.jpg")
    job_id = stack.submit(photos)
    stack.wait_for(job_id, timeout=60)
    assert stack.counts(job_id) == {"done": 1}
    # A manifest row written to climb out of the job's folder is refused by the worker.
    # Written straight to the database and only then enqueued (by `resume`), so no
    # worker can have taken the batch before the row was forged.
    from signdigits.db.jobs import create_job
    from signdigits.db.manifest import add_manifest
    from signdigits.db.models import Job, utcnow

    forged = uuid.uuid4().hex
    with stack.sessions().begin() as session:
        create_job(session, job=Job(id=forged, root=str(photos), threshold=0.5,
                                    batch_size=1, total_images=1, total_batches=1,
                                    model_version="forged", inline=False,
                                    submitted_at=utcnow()))  # resume only re-sends
        add_manifest(session, job_id=forged, rows=[(0, "../../../../etc/hostname")])
    assert stack.cli("resume", forged).returncode == 0
    stack.wait_for(forged, timeout=60)
    [row] = stack.rows(forged)
    assert row.status == "error" and "outside the job's folder" in row.error


def test_allowed_roots_confine_the_worker(stack, dataset, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    stack.start_worker(concurrency=1, SIGNDIGITS_ALLOWED_ROOTS=json.dumps([str(allowed)]))
    photos = tmp_path / "elsewhere"
    photos.mkdir()
    shutil.copyfile(sample_images(dataset, 1)[0][0], photos / "a.jpg")
    job_id = stack.submit(photos)  # the producer here has no restriction; the worker has
    stack.wait_for(job_id, timeout=60)
    [row] = stack.rows(job_id)
    assert row.status == "error" and "SIGNDIGITS_ALLOWED_ROOTS" in row.error
