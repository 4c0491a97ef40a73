"""Uploads refused in one short line that says what is wrong.

A server with small caps and no worker (``capped``): each is refused before anything is
enqueued.
"""

from __future__ import annotations

import pytest

from tests.web_server import serving

MB = 1024 * 1024
JPEG = b"\xff\xd8\xff\xe0" + b"0" * 100  # named .jpg; refused before any worker reads it


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


def _multipart(filename: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    """One ``files`` part named exactly ``filename`` (httpx leaves out an empty one)."""
    boundary = "upload-rules-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n').encode()
    return (body + data + f"\r\n--{boundary}--\r\n".encode(),
            {"content-type": f"multipart/form-data; boundary={boundary}"})


@pytest.mark.parametrize("case", ["no name", "over the file cap", "a name of 400 characters",
                                  "a text file", "a text file among photos"])
def test_a_refused_upload_says_what_is_wrong_in_one_short_line(capped, case):
    if case == "no name":
        body, headers = _multipart("", JPEG)
        response = capped.post("/api/jobs", content=body, headers=headers)
    else:
        files = {"over the file cap": [("big.jpg", bytes(2 * MB))],
                 "a name of 400 characters": [("a" * 396 + ".jpg", JPEG)],
                 "a text file": [("readme.txt", b"hi")],
                 "a text file among photos": [("0/0.jpg", JPEG), ("readme.txt", b"hi")],
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
        "a text file among photos": (415, "'readme.txt' is not an image or a .zip of images; "
                                          "refused"),
    }[case]
    assert not capped.uploads.exists() or not any(capped.uploads.iterdir())

