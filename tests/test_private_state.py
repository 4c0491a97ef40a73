"""What other users of the machine may not touch: the embedded Valkey asks for a password
of its own, the SQLite database is 0600 and each upload's folder 0700."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
import redis

from tests.conftest import make_env, run_cli


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_embedded_valkey_has_a_password_of_its_own_per_run():
    from signdigits.config.settings import masked_password
    from signdigits.stack.valkey import EmbeddedBroker

    first, second = EmbeddedBroker(), EmbeddedBroker()
    try:
        url, other = first.start(), second.start()
        password = redis.Redis.from_url(url).connection_pool.connection_kwargs["password"]
        assert password and len(password) >= 24
        assert password != redis.Redis.from_url(other).connection_pool.connection_kwargs[
            "password"]
        assert redis.Redis.from_url(url).ping()  # the URL it hands out carries it
        port = url.rsplit(":", 1)[1].split("/")[0]
        with pytest.raises(redis.AuthenticationError):  # any other local user
            redis.Redis(host="127.0.0.1", port=int(port)).flushall()
        command_line = Path(f"/proc/{first.pid}/cmdline").read_bytes().decode()
        assert password not in command_line  # `ps` shows it to every user
        assert password not in masked_password(url)
    finally:
        first.stop()
        second.stop()


def test_the_sqlite_database_is_created_private(tmp_path):
    previous = os.umask(0o022)  # the usual one, under which SQLite made it 0644
    try:
        env = make_env()
        env["XDG_DATA_HOME"] = str(tmp_path)
        result = run_cli("db", "upgrade", env=env, cwd=tmp_path, timeout=120)
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stderr
    database = tmp_path / "signdigits" / "signdigits.db"
    assert _mode(database) == 0o600, oct(_mode(database))


def test_an_uploads_folder_is_private(redis_url, tmp_path):
    from PIL import Image

    from signdigits.config.settings import Settings
    from tests.web_server import serving

    photo = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(photo, "JPEG")
    settings = Settings(broker_url=redis_url.rsplit("/", 1)[0] + "/11",
                        database_url=f"sqlite:///{tmp_path / 'r.db'}", upload_dir=tmp_path / "up")
    previous = os.umask(0o022)
    try:
        with serving(settings) as client:
            answer = client.post("/api/jobs", files=[("files", ("3/a.jpg", photo.getvalue()))])
            assert answer.status_code == 201, answer.text
            client.post(f"/api/jobs/{answer.json()['id']}/cancel")  # no worker takes it
    finally:
        os.umask(previous)
    folders = list((tmp_path / "up").iterdir())
    assert len(folders) == 1 and _mode(folders[0]) == 0o700, oct(_mode(folders[0]))
    assert _mode(tmp_path / "r.db") == 0o600
