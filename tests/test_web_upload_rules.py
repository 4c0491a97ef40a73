"""Uploads read as ``signdigits run`` reads a folder, and refused in one short line.

A real uvicorn, Valkey and Celery worker on SQLite (``web``) for the uploads that become
jobs; a server with small caps and no worker (``capped``) for those refused before
anything is enqueued. The page's side of the same rules: tests/test_web_browser.py.
"""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.conftest import sample_images
from tests.web_server import serving, sse_until_done, web_stack

MB = 1024 * 1024
JPEG = b"\xff\xd8\xff\xe0" + b"0" * 100  # named .jpg; refused before any worker reads it


@pytest.fixture(scope="module", params=["sqlite"])
def web(request, redis_url, tmp_path_factory):
    yield from web_stack(request, redis_url, tmp_path_factory)


@pytest.fixture(scope="module")
def capped(redis_url, tmp_path_factory):
    from signdigits.config.settings import Settings

    tmp = tmp_path_factory.mktemp("upload-rules")
    settings = Settings(broker_url=redis_url, database_url=f"sqlite:///{tmp / 'r.db'}",
                        upload_dir=tmp / "uploads", max_upload_bytes=3 * MB,
                        max_file_bytes=1 * MB)
    with serving(settings) as client:
        client.uploads = tmp / "uploads"
        yield client


def _rows(client, job_id: str) -> dict[str, tuple[str, str | None]]:
    items = client.get(f"/api/jobs/{job_id}/images", params={"limit": 100}).json()["items"]
    return {i["path"]: (i["status"], i["error"]) for i in items}


def _zip(*entries: tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return out.getvalue()


def test_a_folder_upload_is_read_as_the_server_folder_is(web, dataset, tmp_path):
    """A Mac's folder, sent with paths as a program sends it: its empty photo was a 400
    for the whole upload (`'0/broken.jpg' is empty`), its .DS_Store another ("not a usable
    file name"); now the empty photo is an error row, hidden files are skipped, and the
    rows are those the same folder gets when named on the server."""
    photo = sample_images(dataset, 1, seed=5)[0][0].read_bytes()
    folder = tmp_path / "mac"
    files = {"0/0.jpg": photo, "0/broken.jpg": b"", ".DS_Store": b"\0\0\0\1Bud1",
             "0/._0.jpg": b"AppleDouble", ".git/x.jpg": JPEG}
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    upload = web.post("/api/jobs", files=[("files", (p, d)) for p, d in files.items()])
    assert upload.status_code == 201, upload.text
    assert upload.json()["total_images"] == 2
    named = web.post("/api/jobs", json={"folder": str(folder)})
    assert named.status_code == 201, named.text
    expected = {"0/0.jpg": ("done", None), "0/broken.jpg": ("error", "empty file (0 bytes)")}
    for job in (upload.json(), named.json()):
        assert sse_until_done(web, job["id"])[-1][1]["state"] == "done with errors"
        assert _rows(web, job["id"]) == expected


def test_a_zip_from_a_mac_is_unpacked_without_its_hidden_files(web, dataset):
    """``.DS_Store`` and ``__MACOSX/._*`` entries had refused the whole zip."""
    photo = sample_images(dataset, 1, seed=6)[3][0].read_bytes()
    archive = _zip(("3/a.jpg", photo), ("3/.DS_Store", b"x"), ("__MACOSX/3/._a.jpg", b"x"),
                   (".hidden/b.jpg", photo))
    response = web.post("/api/jobs", files=[("files", ("mac.zip", archive))])
    assert response.status_code == 201, response.text
    sse_until_done(web, response.json()["id"])
    assert _rows(web, response.json()["id"]) == {"3/a.jpg": ("done", None)}


def test_a_zip_in_a_hidden_folder_is_skipped_as_hidden_files_are(web, dataset):
    """A zip under ``.git/`` or ``__MACOSX/`` (a folder upload with paths) was unpacked
    while the hidden files beside it were skipped, and it put the user's own zip under a
    folder of its own, as one of several."""
    photos = [path.read_bytes() for path, _ in sample_images(dataset, 1, seed=8)[:3]]
    response = web.post("/api/jobs", files=[
        ("files", ("day/day.zip", _zip(("3/a.jpg", photos[0])))),
        ("files", ("day/.git/old.zip", _zip(("4/b.jpg", photos[1])))),
        ("files", ("day/__MACOSX/day.zip", _zip(("5/c.jpg", photos[2])))),
        ("files", ("day/.git/x.jpg", photos[1]))])
    assert response.status_code == 201, response.text
    assert response.json()["left_out"] == []  # hidden parts are skipped in silence
    sse_until_done(web, response.json()["id"])
    assert _rows(web, response.json()["id"]) == {"3/a.jpg": ("done", None)}


def test_zips_holding_the_same_names_each_keep_a_folder_of_their_own(web, dataset):
    """Cameras restart their numbering: day1.zip and day2.zip both hold IMG_0001.jpg
    (was 400 "two files in the upload have the path"). Each zip's images go under its
    name, below a label folder 0-9 so that labels by folder still count; a zip named
    like another gets a folder of its own too."""
    photos = [path.read_bytes() for path, _ in sample_images(dataset, 1, seed=7)[:4]]
    day1 = _zip(("IMG_0001.jpg", photos[0]), ("3/IMG_0002.jpg", photos[1]))
    day2 = _zip(("IMG_0001.jpg", photos[2]))
    again = _zip(("IMG_0001.jpg", photos[3]))
    response = web.post("/api/jobs", files=[("files", ("day1.zip", day1)),
                                            ("files", ("day2.zip", day2)),
                                            ("files", ("old/day1.zip", again))])
    assert response.status_code == 201, response.text
    sse_until_done(web, response.json()["id"])
    rows = _rows(web, response.json()["id"])
    assert set(rows) == {"day1/IMG_0001.jpg", "3/day1/IMG_0002.jpg", "day2/IMG_0001.jpg",
                         "day1 (2)/IMG_0001.jpg"}
    assert {status for status, _ in rows.values()} == {"done"}
    csv = web.get(f"/api/jobs/{response.json()['id']}/results.csv").text
    assert "day2/IMG_0001.jpg" in csv and "3/day1/IMG_0002.jpg" in csv


def _multipart(filename: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    """One ``files`` part named exactly ``filename`` (httpx leaves out an empty one)."""
    boundary = "upload-rules-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n').encode()
    return (body + data + f"\r\n--{boundary}--\r\n".encode(),
            {"content-type": f"multipart/form-data; boundary={boundary}"})


@pytest.mark.parametrize("case", ["no name", "over the file cap", "a name of 400 characters",
                                  "a text file", "nothing else to classify"])
def test_a_refused_upload_says_what_is_wrong_in_one_short_line(capped, case):
    """A text file or a photo over the cap among photos costs only itself
    (tests/test_upload_parts.py); alone, or with only more of the same, the upload has
    nothing to classify and is refused by the first's reason."""
    if case == "no name":
        body, headers = _multipart("", JPEG)
        response = capped.post("/api/jobs", content=body, headers=headers)
    else:
        files = {"over the file cap": [("big.jpg", bytes(2 * MB))],
                 "a name of 400 characters": [("a" * 396 + ".jpg", JPEG)],
                 "a text file": [("readme.txt", b"hi")],
                 "nothing else to classify": [("readme.txt", b"hi"), ("big.jpg", bytes(2 * MB))],
                 }[case]
        response = capped.post("/api/jobs", files=[("files", f) for f in files])
    detail = response.json()["detail"]
    assert (response.status_code, detail) == {
        "no name": (400, "a file without a name (its filename is empty); refused"),
        "over the file cap": (413, "'big.jpg' is over the 1 MB (1,048,576 bytes) per-file cap "
                                   "(SIGNDIGITS_MAX_FILE_BYTES); refused"),
        "a name of 400 characters": (400, f"'{'a' * 40}...{'a' * 12}.jpg': a file or folder "
                                          "name over 255 bytes, longer than a file system "
                                          "takes; refused"),
        "a text file": (415, "'readme.txt' is not an image or a .zip of images; refused"),
        "nothing else to classify": (415, "nothing in the upload can be classified: "
                                          "'readme.txt' is not an image or a .zip of images, "
                                          "and 1 more; refused"),
    }[case]
    assert not capped.uploads.exists() or not any(capped.uploads.iterdir())

