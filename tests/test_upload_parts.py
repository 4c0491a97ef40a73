"""A bad part of an upload costs only itself, and the answer says so one line each.

A stray PDF or one photo over ``SIGNDIGITS_MAX_FILE_BYTES`` had refused the whole upload
(415, 413): the person who sent 500 photos and one panorama lost the 500. Now the upload
is read as ``signdigits run`` reads the same folder: the PDF is skipped, the panorama is
an error row with the walk's own words, the rest is classified. A real uvicorn, Valkey
and Celery worker on SQLite and PostgreSQL, with a 100 kB cap to keep the files small.
The rules that still refuse the whole upload: tests/test_web_bad_input.py.
"""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.conftest import Stack, sample_images
from tests.web_server import serving, sse_until_done

CAP = 100_000
BIG = 150_000  # a "panorama": over the cap, its content never read


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def web(request, redis_url, tmp_path_factory):
    from signdigits.config.settings import Settings

    tmp = tmp_path_factory.mktemp("upload-parts")
    database_url = (f"sqlite:///{tmp / 'results.db'}" if request.param == "sqlite"
                    else request.getfixturevalue("postgres_url"))
    stack = Stack(redis_url, database_url, tmp, upload_dir=str(tmp / "uploads"),
                  max_file_bytes=CAP)
    stack.start_worker(concurrency=1)
    settings = Settings(broker_url=stack.broker_url, database_url=database_url,
                        upload_dir=tmp / "uploads", max_file_bytes=CAP)
    try:
        with serving(settings) as client:
            yield client
    finally:
        stack.stop()


def _photos(dataset, seed: int) -> dict[str, bytes]:
    """Three photos under their label folders (``3/IMG.jpg``)."""
    return {f"{digit}/{path.name}": path.read_bytes()
            for path, digit in sample_images(dataset, 1, seed=seed)[:3]}


def _rows(client, job_id: str) -> dict[str, tuple[str, str | None]]:
    items = client.get(f"/api/jobs/{job_id}/images", params={"limit": 200}).json()["items"]
    return {i["path"]: (i["status"], i["error"]) for i in items}


def _finished(client, response) -> tuple[dict, dict[str, tuple[str, str | None]]]:
    assert response.status_code == 201, response.text
    job = response.json()
    assert sse_until_done(client, job["id"])[-1][1]["state"] == "done with errors"
    return job, _rows(client, job["id"])


def test_a_pdf_and_a_photo_over_the_cap_cost_only_themselves(web, dataset, tmp_path):
    """The upload's rows are those of the same folder named on the server: the PDF has
    none, the big photo the walk's error, the photos are classified."""
    photos = _photos(dataset, seed=41)
    big = next(iter(photos.values())) + bytes(BIG)
    files = {**photos, "notes.pdf": b"%PDF-1.4 minutes", "7/pano.jpg": big}
    folder = tmp_path / "day"
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)

    upload = web.post("/api/jobs", files=[("files", (p, d)) for p, d in files.items()])
    job, rows = _finished(web, upload)
    assert (job["left_out_count"], job["left_out"]) == (2, [
        "'notes.pdf' is not an image or a .zip of images; skipped",
        "'7/pano.jpg' is over the 0.09537 MB (100,000 bytes) per-file cap "
        "(SIGNDIGITS_MAX_FILE_BYTES); an error row says so"])
    assert job["total_images"] == 4
    too_big = ("error", f"file is {len(big):,} bytes, over the {CAP:,}-byte cap")
    assert rows == {**{path: ("done", None) for path in photos}, "7/pano.jpg": too_big}
    csv = web.get(f"/api/jobs/{job['id']}/results.csv").text
    assert "7/pano.jpg" in csv and "notes.pdf" not in csv

    named = web.post("/api/jobs", json={"folder": str(folder)})
    assert named.json()["left_out"] == []  # a folder's walk skips as it goes, unsaid
    assert _finished(web, named)[1] == rows


def _torn(data: bytes, name: str) -> bytes:
    """``data``, a zip, with the deflated data of its entry ``name`` overwritten part-way."""
    torn = bytearray(data)
    start = torn.find(name.encode()) + len(name) + 40  # past its local header, inside
    torn[start:start + 50] = b"\x00" * 50
    return bytes(torn)


def test_the_same_inside_a_zip_and_a_zip_that_cannot_be_read(web, dataset):
    """A zip's entry over the cap (never unpacked) and one whose data is corrupt are error
    rows; its stray files are skipped and said, the first 100 listed and all counted; a
    second "zip" that is not one costs only itself. Each had refused the whole upload."""
    photos = _photos(dataset, seed=42)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path, data in photos.items():
            archive.writestr(path, data)
        archive.writestr("7/pano.jpg", bytes(BIG))
        for n in range(150):
            archive.writestr(f"notes/{n:03}.txt", b"minutes")
        archive.writestr("__MACOSX/3/._a.jpg", b"x")  # hidden: skipped, unsaid
        archive.writestr("8/torn.jpg", b"".join(b"line %d\n" % i for i in range(5000)),
                         compress_type=zipfile.ZIP_DEFLATED)
    day = _torn(out.getvalue(), "8/torn.jpg")
    response = web.post("/api/jobs", files=[("files", ("day.zip", day)),
                                            ("files", ("broken.zip", b"PK not a zip"))])
    job, rows = _finished(web, response)
    assert job["left_out_count"] == 153
    assert len(job["left_out"]) == 100
    assert job["left_out"][:2] == [
        "'day.zip': '7/pano.jpg' is over the 0.09537 MB (100,000 bytes) per-file cap "
        "(SIGNDIGITS_MAX_FILE_BYTES); the error row '7/day/pano.jpg' says so",
        "'day.zip': 'notes/000.txt' is not an image; skipped"]
    assert job["total_images"] == 5
    assert rows.pop("7/day/pano.jpg") == ("error", f"file is {BIG:,} bytes, over the "
                                                   f"{CAP:,}-byte cap")
    status, error = rows.pop("8/day/torn.jpg")
    assert status == "error" and error.startswith("cannot unpack it from the zip: ")
    assert rows == {path.replace("/", "/day/", 1): ("done", None) for path in photos}


def test_a_broken_zip_among_photos_is_said_and_the_photos_kept(web, dataset):
    photos = _photos(dataset, seed=43)
    response = web.post("/api/jobs", files=[*[("files", (p, d)) for p, d in photos.items()],
                                            ("files", ("broken.zip", b"PK not a zip"))])
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["left_out"] == ["'broken.zip' is not a readable zip archive; skipped"]
    sse_until_done(web, job["id"])
    assert _rows(web, job["id"]) == {path: ("done", None) for path in photos}


def test_a_zips_line_names_the_path_of_its_error_row(web, dataset):
    """Of two zips, each unpacks under its own folder: the lines for an entry that cannot
    be unpacked and one over the cap named the path inside the zip ('8/torn.jpg') and
    the rows were '8/day/torn.jpg', so neither led to the other."""
    photos = _photos(dataset, seed=44)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("7/pano.jpg", bytes(BIG))
        archive.writestr("8/torn.jpg", b"".join(b"line %d\n" % i for i in range(5000)),
                         compress_type=zipfile.ZIP_DEFLATED)
    day = _torn(out.getvalue(), "8/torn.jpg")
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as archive:
        for path, data in photos.items():
            archive.writestr(path, data)
    response = web.post("/api/jobs", files=[("files", ("day.zip", day)),
                                            ("files", ("photos.zip", other.getvalue()))])
    job, rows = _finished(web, response)
    pano, torn = job["left_out"]
    assert pano == ("'day.zip': '7/pano.jpg' is over the 0.09537 MB (100,000 bytes) per-file "
                    "cap (SIGNDIGITS_MAX_FILE_BYTES); the error row '7/day/pano.jpg' says so")
    assert torn.startswith("'day.zip': '8/torn.jpg': cannot unpack it: ")
    assert torn.endswith("; the error row '8/day/torn.jpg' says so")
    assert rows.pop("7/day/pano.jpg")[0] == rows.pop("8/day/torn.jpg")[0] == "error"
    assert rows == {path.replace("/", "/photos/", 1): ("done", None) for path in photos}
