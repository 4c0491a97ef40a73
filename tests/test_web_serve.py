"""``signdigits serve`` as a user runs it, who may use it, and what the web process imports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, make_env, run_cli, sample_images, start_valkey, wait_for_http
from tests.waiting import wait_until
from tests.web_server import sse_until_done


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_serve(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """`signdigits serve` with no broker configured (the embedded stack), one worker
    process, its default database under ``tmp_path`` ($XDG_DATA_HOME/signdigits/)."""
    from signdigits.stack.valkey import free_port

    port = free_port()
    env = make_env(concurrency="1")
    env["XDG_DATA_HOME"] = str(tmp_path)
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "signdigits", "serve", "--port",
                                str(port)], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, port


def _big_png(photo: Path) -> bytes:
    """The photo at 2,000 x 2,000 with faint noise: a PNG of about 6 MB."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(photo).convert("RGB").resize((2000, 2000))).astype(np.int16)
    pixels += np.random.default_rng(1).integers(-4, 5, pixels.shape, dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


def test_serve_starts_the_embedded_stack_and_stops_it(tmp_path, dataset):
    """No broker configured: Valkey, a worker and the default database, gone after Ctrl-C."""
    process, port = _start_serve(tmp_path)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/jobs", timeout=120)
        children = _children(process.pid)
        assert len(children) >= 2, children  # the broker and the worker
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            path, digit = sample_images(dataset, 1, seed=4)[3]
            answer = client.post("/api/predict", files={"file": (path.name, path.read_bytes())})
            assert answer.status_code == 200, answer.text
            assert answer.json()["digit"] == digit
            # A big photo (over the 5 MB cap of photos sent inside messages): serve's own
            # workers read the upload folder, so it is classified, not an error row.
            big = _big_png(path)
            assert len(big) > 5 * 1024 * 1024
            job = client.post("/api/jobs", files=[
                ("files", (f"{digit}/{path.name}", path.read_bytes())),
                ("files", (f"{digit}/big.png", big))]).json()
            assert sse_until_done(client, job["id"])[-1][1]["done"] == 2
            rows = client.get(f"/api/jobs/{job['id']}/images").json()["items"]
            assert [r["error"] for r in rows] == [None, None]
            assert {r["digit"] for r in rows} == {digit}
        assert (tmp_path / "signdigits" / "signdigits.db").exists()
        assert any((tmp_path / "signdigits" / "uploads").iterdir())  # beside the database
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    assert f"http://127.0.0.1:{port}/" in output
    assert "Traceback" not in output, output  # Ctrl-C is how a person stops it
    wait_until(lambda: not any(_alive(pid) for pid in children), timeout=10,
               message="serve's children to exit", details=lambda: output)
    assert not [pid for pid in children if _alive(pid)], output


def test_serve_stops_when_its_embedded_worker_dies(tmp_path):
    """A killed worker ends `serve` with one line and exit 1, not a server that never answers."""
    process, port = _start_serve(tmp_path)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/jobs", timeout=120)
        children = _children(process.pid)
        worker = next(pid for pid in children
                      if b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.kill(worker, signal.SIGKILL)
        output = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, output
    assert "the embedded worker exited" in output and "Traceback" not in output, output
    wait_until(lambda: not any(_alive(pid) for pid in children), timeout=10,
               message="serve's children to exit", details=lambda: output)
    assert not [pid for pid in children if _alive(pid)], output  # the broker is stopped too


@pytest.mark.parametrize("settings, host, refused", [
    ({"environment": "production"}, "127.0.0.1", "SIGNDIGITS_WEB_AUTH"),
    ({"environment": "production", "web_auth": "admin:changeme"}, "127.0.0.1", "placeholder"),
    ({"web_auth": "admin:password"}, "127.0.0.1", "placeholder"),
    ({"web_auth": "nocolon"}, "127.0.0.1", "user:password"),
    ({"web_token": "short"}, "127.0.0.1", "16 characters"),
    ({}, "0.0.0.0", "loopback"),
    ({"environment": "production", "web_auth": "admin:s3cret-Horse"}, "0.0.0.0", None),
    ({"web_token": "a-long-enough-token-123"}, "0.0.0.0", None),
    ({}, "127.0.0.1", None),
    ({}, "::1", None),
])
def test_who_may_start_open(settings, host, refused):
    from signdigits.config.settings import Settings
    from signdigits.web.auth import StartRefused, check_can_start

    if refused is None:
        check_can_start(Settings(**settings), host=host)
        return
    with pytest.raises(StartRefused, match=refused):
        check_can_start(Settings(**settings), host=host)


def test_serve_refuses_production_without_credentials(tmp_path):
    result = run_cli("serve", env=make_env(environment="production"), cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "SIGNDIGITS_WEB_AUTH" in result.stderr


def test_serve_on_a_taken_port_says_so_before_starting_anything(tmp_path):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), cwd=tmp_path, timeout=60,
                         env=make_env(database_url=f"sqlite:///{tmp_path / 'sd.db'}"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == (f"error: cannot listen on 127.0.0.1 port {port}: "
                                     "Address already in use")
    assert not (tmp_path / "sd.db").exists()  # refused before the database, Valkey, workers


def test_credentials_are_required_when_set(tmp_path):
    from signdigits.config.settings import Settings
    from tests.web_server import serving

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", environment="production",
                        web_auth="ann:a-real-secret", web_token="t" * 20)
    with serving(settings) as client:
        for url in ("/", "/api/jobs", "/docs", "/static/common.js"):
            assert client.get(url).status_code == 401
        assert client.get("/api/jobs", auth=("ann", "wrong")).status_code == 401
        assert client.get("/healthz").json() == {"ok": True}  # the health check needs none
        assert client.get("/api/jobs", auth=("ann", "a-real-secret")).status_code == 200
        bearer = {"Authorization": "Bearer " + "t" * 20}
        assert client.get("/api/jobs", headers=bearer).status_code == 200


def test_the_web_never_imports_tensorflow(tmp_path, dataset):
    """Serving pages, an upload, its pictures and a prediction loads no TensorFlow."""
    photo = sample_images(dataset, 1, seed=2)[0][0]
    broker = start_valkey()  # its own: no worker anywhere consumes it
    redis_url = broker.url
    script = textwrap.dedent(f"""
        import sys
        from contextlib import ExitStack
        from signdigits.config.settings import Settings
        from tests.web_server import serving

        settings = Settings(database_url="sqlite:///{tmp_path}/r.db", broker_url="{redis_url}",
                            upload_dir="{tmp_path}/up", predict_timeout=0.5)
        running = ExitStack()  # held, or the collected generator would stop the server
        client = running.enter_context(serving(settings))  # a real uvicorn, to the end
        data = open("{photo}", "rb").read()
        for url in ("/", "/try", "/docs", "/openapi.json"):
            assert client.get(url).status_code == 200, url
        client.cookies.clear()
        job = client.post("/api/jobs", files=[("files", ("3/a.jpg", data))])
        assert job.status_code == 201, job.text
        assert client.get("/jobs/" + job.json()["id"]).status_code == 200
        assert client.get("/jobs/" + job.json()["id"] + "/review").status_code == 200
        assert client.get("/api/jobs/" + job.json()["id"] + "/review").status_code == 200
        image = client.get("/api/jobs/" + job.json()["id"] + "/images").json()["items"][0]
        assert client.get(f"/api/images/{{image['id']}}/thumbnail").status_code == 200
        assert client.get(f"/api/images/{{image['id']}}/annotated.jpg").status_code == 200
        assert client.get(f"/api/images/{{image['id']}}/hand.png").status_code == 404  # pending
        client.cookies.clear()
        review = client.post(f"/api/images/{{image['id']}}/review", json={{"digit": 3}})
        assert review.status_code == 409, review.text  # still pending: nothing to review
        # No worker consumes this broker: the prediction times out, 503.
        client.cookies.clear()
        assert client.post("/api/predict", files={{"file": ("a.jpg", data)}}).status_code == 503
        print("tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO))}
    try:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                env=env, cwd=tmp_path, timeout=120)
    finally:
        broker.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["False", "False"]


def test_serve_with_an_upload_folder_it_cannot_write_says_so_before_starting(tmp_path):
    from signdigits.stack.valkey import free_port

    (tmp_path / "uploads").write_text("a file where the folder should be")
    # A free port: on the default 8000, a `serve` already running there was the answer.
    result = run_cli("serve", "--port", str(free_port()), cwd=tmp_path, timeout=60, env=make_env(
        database_url=f"sqlite:///{tmp_path / 'sd.db'}", upload_dir=str(tmp_path / "uploads")))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: uploads folder") and "SIGNDIGITS_UPLOAD_DIR" in line, line


def test_serve_says_when_its_broker_does_not_answer(tmp_path):
    """It had started without a word: the first sign was a 503 on the first submit."""
    from signdigits.stack.valkey import free_port

    port, silent = free_port(), free_port()
    env = make_env(database_url=f"sqlite:///{tmp_path / 'sd.db'}",
                   broker_url=f"redis://127.0.0.1:{silent}/0")
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "signdigits", "serve", "--port",
                                    str(port)], env=env, cwd=tmp_path, stdout=out, stderr=out,
                                   stdin=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        said = log.read_text()
        assert "warning: cannot reach the broker at" in said, said
        assert "the pages serve, but submissions and predictions are refused (503)" in said
        assert "Traceback" not in said
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
