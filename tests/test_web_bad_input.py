"""Everything bad a client can send gets a 4xx with one line of JSON, and leaves nothing.

A real uvicorn on a real Valkey and a SQLite file; no worker is needed, since every one
of these is refused before anything is enqueued.
"""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from tests.waiting import wait_until
from tests.web_server import serving

MB = 1024 * 1024


@pytest.fixture(scope="module")
def bad(redis_url, tmp_path_factory):
    from signdigits.config.settings import Settings

    tmp = tmp_path_factory.mktemp("web-bad")
    allowed = tmp / "allowed"
    allowed.mkdir()
    (allowed / "loop").mkdir()  # a symlink loop: Path.resolve() raised RuntimeError, a 500
    (allowed / "loop" / "a").symlink_to(allowed / "loop" / "b")
    (allowed / "loop" / "b").symlink_to(allowed / "loop" / "a")
    settings = Settings(broker_url=redis_url, database_url=f"sqlite:///{tmp / 'r.db'}",
                        upload_dir=tmp / "uploads", allowed_roots=[allowed],
                        max_upload_bytes=3 * MB, max_unpacked_bytes=2 * MB,
                        max_file_bytes=1 * MB)
    with serving(settings) as client:
        client.uploads, client.allowed = tmp / "uploads", allowed
        yield client


def _corrupt_zip(method: int) -> bytes:
    """A zip whose one entry's compressed data is overwritten part-way."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        archive.writestr("x.jpg", b"".join(b"line %d of a log\n" % i for i in range(5000)))
    data = bytearray(out.getvalue())
    start = data.find(b"PK\x03\x04") + 30 + len("x.jpg") + 40  # inside the entry's data
    data[start:start + 50] = b"\x00" * 50 if method == zipfile.ZIP_DEFLATED else b"\xff" * 50
    return bytes(data)


def _zip(*entries: tuple[str, bytes], link: str | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return out.getvalue()


JPEG = b"\xff\xd8\xff\xe0" + b"0" * 100  # named .jpg; its content is the workers' business

CASES = {
    "not an image": (415, dict(files=[("files", ("notes.txt", b"hello"))])),
    # An empty image is an error row, as in a folder (test_web_upload_rules.py).
    "only hidden files": (400, dict(files=[("files", (".DS_Store", b"x"))])),
    "no files": (400, dict(files=[("other", ("a.jpg", JPEG))])),
    "zip climbing out": (400, dict(files=[("files", ("x.zip", _zip(("../../evil.jpg", JPEG))))])),
    "zip absolute path": (400, dict(files=[("files", ("x.zip", _zip(("/tmp/evil.jpg", JPEG))))])),
    "zip with a link": (400, dict(files=[("files", ("x.zip", _zip(("ok.jpg", JPEG),
                                                                     link="3/link.jpg")))])),
    "zip bomb": (413, dict(files=[("files", ("b.zip", _zip(*[(f"{n}.jpg", bytes(900_000))
                                                               for n in range(3)])))])),
    "zip entry over the file cap": (
        413, dict(files=[("files", ("c.zip", _zip(("big.jpg", bytes(2 * MB)))))])),
    "not a zip": (400, dict(files=[("files", ("d.zip", b"PK not really"))])),
    "zip without images": (400, dict(files=[("files", ("e.zip", _zip(("readme.txt", b"hi"))))])),
    "same path twice": (400, dict(files=[("files", ("3/a.jpg", JPEG)),
                                         ("files", ("3/a.jpg", JPEG))])),
    "bad threshold": (422, dict(files=[("files", ("a.jpg", JPEG))], data={"threshold": "2"})),
    "threshold not a number": (422, dict(files=[("files", ("a.jpg", JPEG))],
                                         data={"threshold": "high"})),
    "body over the upload cap": (413, dict(files=[("files", ("big.jpg", bytes(4 * MB)))])),
    # Names the file system refuses: they had been 500s (OSError, FileExistsError).
    "name too long for the file system": (400, dict(files=[("files", ("a" * 300 + ".jpg", JPEG))])),
    "a file where a folder must go": (400, dict(files=[("files", ("x.jpg", JPEG)),
                                                       ("files", ("x.jpg/z.jpg", JPEG))])),
    # Found by fuzzing a running server, each a 500: pathlib's mkdir recursed once per
    # level (RecursionError), and zipfile raises zlib's and lzma's own errors.
    "nested 1,000 folders deep": (400, dict(files=[("files", ("a/" * 1000 + "x.jpg", JPEG))])),
    "zip entry nested 1,000 deep": (400, dict(files=[("files", ("n.zip", _zip(
        ("a/" * 1000 + "x.jpg", JPEG))))])),
    "zip with corrupt deflate data": (400, dict(files=[("files", (
        "f.zip", _corrupt_zip(zipfile.ZIP_DEFLATED)))])),
    "zip with corrupt LZMA data": (400, dict(files=[("files", (
        "g.zip", _corrupt_zip(zipfile.ZIP_LZMA)))])),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_upload_is_refused_and_leaves_nothing(bad, case):
    status, request = CASES[case]
    response = bad.post("/api/jobs", **request)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert detail and "\n" not in detail
    assert not bad.uploads.exists() or not any(bad.uploads.iterdir())


@pytest.mark.parametrize("body, status", [
    ({"folder": "/etc"}, 403),                      # outside SIGNDIGITS_ALLOWED_ROOTS
    ({"folder": "relative/path"}, 422),
    ({"folder": 5}, 422),
    ([1, 2], 422),
    ({"folder": "ALLOWED", "threshold": -1}, 422),
    ({"folder": "ALLOWED", "batch_size": 0}, 422),
    ({"folder": "ALLOWED"}, 400),                   # an empty folder: no images found
    ({"folder": "ALLOWED/missing"}, 400),
    # Each of these was a 500, found by fuzzing a running server:
    ({"folder": "ALLOWED", "threshold": int("1" * 400)}, 422),  # float() overflows
    ('{"folder": "ALLOWED", "batch_size": 1e400}', 422),  # infinity: int() overflows
    ({"folder": "ALLOWED", "batch_size": 1.7}, 422),  # was taken as 1
    ({"folder": "/tmp/\u0000x"}, 422),  # a NUL byte: realpath raised ValueError
    ('{"folder": "/tmp/x/\\ud800"}', 422),  # an unpaired surrogate: UnicodeEncodeError
    ({"folder": "ALLOWED/" + "a/" * 3000}, 400),  # longer than a path may be: OSError
    ({"folder": "ALLOWED/loop/a"}, 400),  # a symlink loop: RuntimeError
])
def test_bad_folder_job_is_refused(bad, body, status):
    if isinstance(body, dict) and str(body.get("folder", "")).startswith("ALLOWED"):
        body = {**body, "folder": body["folder"].replace("ALLOWED", str(bad.allowed))}
    if isinstance(body, str):  # JSON no client library would write: sent as it is
        response = bad.post("/api/jobs", content=body.replace("ALLOWED", str(bad.allowed)),
                            headers={"content-type": "application/json"})
    else:
        response = bad.post("/api/jobs", json=body)
    assert response.status_code == status, response.text
    assert "\n" not in response.json()["detail"]


@pytest.mark.parametrize("method, url, kwargs, status", [
    ("GET", "/api/jobs/0123456789abcdef", {}, 404),
    ("GET", "/api/jobs/nope/images", {}, 404),
    ("GET", "/api/jobs/nope/events", {}, 404),
    ("GET", "/api/jobs/nope/results.csv", {}, 404),
    ("POST", "/api/jobs/nope/cancel", {}, 404),
    ("GET", "/api/images/999999/thumbnail", {}, 404),
    ("GET", "/api/images/abc/annotated.jpg", {}, 422),
    ("GET", "/api/images/999999/hand.png", {}, 404),
    ("GET", "/api/images/1/annotated.jpg?side=5", {}, 422),
    ("GET", "/api/images/1/thumbnail?side=5", {}, 422),
    ("GET", "/api/jobs?limit=0", {}, 422),
    ("GET", "/api/jobs?cursor=x", {}, 422),
    ("POST", "/api/jobs", {"content": b"{not json", "headers": {
        "content-type": "application/json"}}, 400),
    ("POST", "/api/jobs", {"content": b"x", "headers": {"content-type": "text/plain"}}, 415),
    # Each of these was a 500: ids past a BIGINT overflowed SQLite's binding, and a JSON
    # document nested 100,000 deep overflowed the parser's recursion.
    ("GET", f"/api/images/{2**63}/thumbnail", {}, 422),
    ("GET", f"/api/images/{2**63}/annotated.jpg", {}, 422),
    ("GET", f"/api/images/{2**63}/hand.png", {}, 422),
    ("GET", f"/api/jobs/latest/review?skip={10**20}", {}, 422),
    ("POST", "/api/jobs", {"content": b"[" * 100_000 + b"]" * 100_000, "headers": {
        "content-type": "application/json"}}, 400),
    ("POST", "/api/images/1/review", {"content": b"[" * 100_000 + b"]" * 100_000,
                                      "headers": {"content-type": "application/json"}}, 400),
    ("POST", "/api/predict", {"files": {"file": ("a.jpg", b"not an image at all")}}, 415),
    ("POST", "/api/predict", {"files": {"file": ("a.jpg", b"")}}, 400),
    ("POST", "/api/predict", {"data": {"threshold": "0.5"}}, 422),
    ("POST", "/api/predict", {"files": {"file": ("a.jpg", bytes(2 * MB))}}, 413),
    ("POST", "/api/predict", {"files": {"file": ("a.png", b"\x89PNG\r\n\x1a\n")},
                              "data": {"threshold": "7"}}, 422),
])
def test_bad_request_gets_one_line(bad, method, url, kwargs, status):
    response = bad.request(method, url, **kwargs)
    assert response.status_code == status, response.text
    assert "\n" not in response.json()["detail"]


def test_bad_image_cursor(bad):
    from signdigits.db.models import Job
    from signdigits.db.session import session_factory

    with session_factory(bad.settings.database_url).begin() as session:
        session.add(Job(id="c" * 32, root="/x", threshold=0.5, batch_size=1, total_images=0,
                        total_batches=0, model_version="v"))
    import base64

    tampered = [base64.urlsafe_b64encode(text.encode()).decode().rstrip("=") for text in (
        "[99999999999999999999, null, false]",  # past a BIGINT: SQLite's binding overflowed
        "[-9223372036854775809, null, false]",
        "[1, 1e999, false]",  # an infinite confidence
        "[1, NaN, false]",
        "[" * 5000,  # nested past the parser's recursion limit: was a 500
    )]
    for cursor in ("garbage!!", "WzEsMl0", *tampered):  # not base64 JSON; wrong shape
        for order in ("id", "confidence"):
            response = bad.get(f"/api/jobs/{'c' * 32}/images",
                               params={"cursor": cursor, "order": order})
            assert response.status_code == 400, (cursor, order, response.text)


def test_cross_site_post_is_refused(bad):
    """A browser's cross-site form post carries Origin but not our cookie's token."""
    response = bad.post("/api/jobs", json={"folder": "/etc"},
                        headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and "cross-site" in response.json()["detail"]
    page = bad.get("/")  # the page sets the cookie and carries the token
    token = page.text.split('name="csrf-token" content="')[1].split('"')[0]
    allowed = bad.post("/api/jobs", json={"folder": "/etc"},
                       headers={"Origin": str(bad.base_url), "X-CSRF-Token": token})
    assert allowed.status_code == 403 and "ALLOWED_ROOTS" in allowed.json()["detail"]
    forged = bad.post("/api/jobs", json={"folder": "/etc"},
                      headers={"Origin": "https://evil.example", "X-CSRF-Token": "guess"})
    assert forged.status_code == 403 and "cross-site" in forged.json()["detail"]
    bad.cookies.clear()


def _in_pieces(data: bytes, size: int = 64 * 1024):
    """A body httpx sends chunked: no Content-Length for the cap to refuse up front."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "signdigits-test-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: image/jpeg\r\n\r\n').encode()
    return body + data + f"\r\n--{boundary}--\r\n".encode(), \
        f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("url, field, kind", [
    ("/api/jobs", "files", "multipart"),
    ("/api/predict", "file", "multipart"),  # was 400: FastAPI's form parsing hid the 413
    ("/api/jobs", None, "application/json"),
])
def test_chunked_body_over_the_cap_is_413(bad, url, field, kind):
    if kind == "multipart":
        body, kind = _multipart(field, "big.jpg", bytes(4 * MB))
    else:
        body = b'{"folder": "' + b"a" * (4 * MB) + b'"}'
    response = bad.post(url, content=_in_pieces(body), headers={"content-type": kind})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 413, response.text
    assert "SIGNDIGITS_MAX_UPLOAD_BYTES" in response.json()["detail"]
    assert not bad.uploads.exists() or not any(bad.uploads.iterdir())


@pytest.mark.parametrize("url", ["/", "/api/jobs", "/api/jobs/nope", "/openapi.json",
                                 "/static/style.css"])
def test_head_answers_as_get_without_a_body(bad, url):
    got, head = bad.get(url), bad.head(url)
    assert head.status_code == got.status_code, head.text
    assert head.content == b""
    assert head.headers.get("content-type") == got.headers.get("content-type")
    assert head.headers.get("content-length") == got.headers.get("content-length")


def test_head_on_a_running_jobs_events_ends_at_once(bad):
    """The stream of a job that is still running would go on for as long as the job."""
    from signdigits.db.models import Job
    from signdigits.db.session import session_factory

    job_id = "e" * 32
    with session_factory(bad.settings.database_url).begin() as session:
        session.add(Job(id=job_id, root="/x", threshold=0.5, batch_size=1, total_images=3,
                        total_batches=1, model_version="v"))
    head = bad.head(f"/api/jobs/{job_id}/events", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize("url, kind, start", [
    ("/api/jobs", "application/json", b'{"fol'),
    ("/api/jobs", "multipart/form-data; boundary=b",
     b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\n\xff\xd8'),
    ("/api/images/1/review", "application/json", b'{"dig'),
])
def test_a_client_hanging_up_mid_body_is_not_logged_as_our_error(bad, url, kind, start,
                                                                  caplog):
    """Starlette raises ClientDisconnect; it had reached the catch-all and been logged
    ("unexpected error", with a traceback) as a bug of ours, for a client already gone."""
    import logging
    import socket

    caplog.set_level(logging.DEBUG, logger="signdigits.web.app")
    host, port = bad.base_url.host, bad.base_url.port
    with socket.create_connection((host, port)) as raw:
        raw.sendall(f"POST {url} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {kind}\r\n"
                    "Content-Length: 1000\r\n\r\n".encode() + start)
    wait_until(lambda: any("hung up" in r.getMessage() for r in caplog.records), timeout=10,
               interval=0.02, message="the hung-up request's log line",
               details=lambda: str([r.getMessage() for r in caplog.records]))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_upload_the_server_cannot_store_is_503_and_records_nothing(tmp_path):
    """An upload folder that cannot be made (here a file is in its place) was a 500; the
    same store serves POST /api/predict with store=true."""
    from signdigits.config.settings import Settings

    (tmp_path / "uploads").write_text("a file where the folder should be")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}",
                        broker_url="redis://127.0.0.1:1/0", upload_dir=tmp_path / "uploads")
    with serving(settings) as client:
        response = client.post("/api/jobs", files=[("files", ("a.jpg", JPEG))])
        assert response.status_code == 503, response.text
        assert "cannot store uploads now (Not a directory)" in response.json()["detail"]
        assert client.get("/api/jobs").json()["items"] == []


def test_a_full_disk_while_storing_an_upload_or_unpacking_its_zip_is_503(tmp_path):
    """RLIMIT_FSIZE stands in for a full disk. Unpacking had reported our disk's error as
    the zip's fault, a 400."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import io, resource, signal, zipfile
        from signdigits.config.settings import Settings
        from signdigits.web.upload_store import Upload, UploadRefused
        from signdigits.web.uploads import store_uploads

        settings = Settings(database_url="sqlite:///{tmp_path}/r.db",
                            upload_dir="{tmp_path}/up")
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w") as archive:
            archive.writestr("p.jpg", {JPEG!r} * 50)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
        for upload in (Upload("p.jpg", io.BytesIO({JPEG!r} * 50)),
                       Upload("z.zip", io.BytesIO(zipped.getvalue()))):
            try:
                store_uploads([upload], settings=settings)
            except UploadRefused as refused:
                print(refused.status, refused)
    """)
    from tests.conftest import REPO

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("503 the server cannot store uploads now")
                                   for line in lines), lines
    assert not any((tmp_path / "up").iterdir())  # nothing left behind
