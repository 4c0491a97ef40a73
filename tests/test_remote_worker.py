"""A worker on another host: its own network namespace, reaching Redis and PostgreSQL only
through a veth link, with the submitted folder hidden from it. ``submit --inline`` ships
the image bytes inside the messages; the job must complete with every row right."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from signdigits.db.models import Image
from signdigits.db.session import session_factory
from signdigits.stack.valkey import free_port
from signdigits.stack.workers import worker_command
from tests.conftest import REPO, copy_sample, make_env, require, start_valkey

REDIS_PASSWORD = "remote-worker-pw"


class Proxy:
    """TCP forwarder from the link's host address to a loopback-only server (PostgreSQL)."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.server = socket.create_server(listen)
        self.target = target
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()


class NetworkNamespace:
    """A namespace joined to this host by a veth pair: host .1, namespace .2."""

    def __init__(self) -> None:
        self.name = f"sd-{uuid.uuid4().hex[:6]}"
        subnet = random.randint(0, 255)
        self.host_ip, self.ns_ip = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
        self.veth = f"sdv{uuid.uuid4().hex[:6]}"
        steps = [
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth-sd"],
            ["ip", "link", "set", "eth-sd", "netns", self.name],
            ["ip", "addr", "add", f"{self.host_ip}/24", "dev", self.veth],
            ["ip", "link", "set", self.veth, "up"],
            ["ip", "netns", "exec", self.name, "ip", "addr", "add", f"{self.ns_ip}/24",
             "dev", "eth-sd"],
            ["ip", "netns", "exec", self.name, "ip", "link", "set", "eth-sd", "up"],
            ["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode:
                self.remove()
                raise OSError(f"{' '.join(step)}: {done.stderr.strip()}")

    def prefix(self, hidden: Path) -> list[str]:
        """Run inside the namespace, in a mount namespace where ``hidden`` is empty."""
        script = f'mount -t tmpfs tmpfs "{hidden}" && exec "$@"'
        return ["ip", "netns", "exec", self.name, "unshare", "--mount", "--propagation",
                "private", "sh", "-c", script, "sh"]

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@pytest.fixture
def namespace():
    require(shutil.which("ip") is not None and shutil.which("unshare") is not None,
            "network namespaces unavailable: iproute2/unshare not installed")
    try:
        ns = NetworkNamespace()
    except OSError as exc:
        require(False, f"network namespaces cannot be created here: {exc}")
    yield ns
    ns.remove()


def test_worker_without_the_disk_classifies_inline_jobs(namespace, postgres_url, dataset,
                                                         tmp_path):
    hidden = tmp_path / "producer-disk"
    photos = hidden / "photos"
    truth = copy_sample(dataset, photos, per_digit=6, seed=9)
    (photos / "huge.jpg").write_bytes(os.urandom(300_000))  # over the inline cap below

    redis = start_valkey(password=REDIS_PASSWORD, bind=f"127.0.0.1 {namespace.host_ip}")
    pg = urlsplit(postgres_url.replace("+psycopg", ""))
    proxy_port = free_port()
    proxy = Proxy((namespace.host_ip, proxy_port), (pg.hostname, pg.port or 5432))
    remote_db = postgres_url.replace(
        f"{pg.hostname}:{pg.port}", f"{namespace.host_ip}:{proxy_port}"
    )
    host_env = make_env(broker_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis.port}/0",
                        database_url=postgres_url, inline_max_file_bytes=200_000)
    remote_env = make_env(
        broker_url=f"redis://:{REDIS_PASSWORD}@{namespace.host_ip}:{redis.port}/0",
        database_url=remote_db,
    )
    worker_log = open(tmp_path / "remote-worker.log", "wb")  # noqa: SIM115
    worker = None
    try:
        # The namespace really cannot see the folder.
        probe = subprocess.run([*namespace.prefix(hidden), "ls", str(hidden)],
                               capture_output=True, text=True)
        assert probe.returncode == 0 and probe.stdout.strip() == "", probe.stderr
        migrate = subprocess.run([sys.executable, "-m", "signdigits", "db", "upgrade"],
                                 env=host_env, cwd=REPO, capture_output=True, text=True)
        assert migrate.returncode == 0, migrate.stderr
        worker = subprocess.Popen(
            [*namespace.prefix(hidden),
             *worker_command(concurrency=1, name="signdigits@remote", loglevel="INFO")],
            env=remote_env, cwd=REPO, stdout=worker_log, stderr=subprocess.STDOUT,
        )
        submitted = subprocess.run(
            [sys.executable, "-m", "signdigits", "submit", str(photos), "--inline",
             "--batch-size", "16", "--wait"],
            env=host_env, cwd=REPO, capture_output=True, text=True, timeout=300,
        )
        log = (tmp_path / "remote-worker.log").read_text(errors="replace")[-3000:]
        assert submitted.returncode == 0, submitted.stderr[-2000:] + log
        job_id = submitted.stdout.strip().splitlines()[0]
        with session_factory(postgres_url)() as session:
            rows = {r.path: r for r in session.scalars(select(Image).where(Image.job_id == job_id))}
        assert set(rows) == {*truth, "huge.jpg"}
        assert rows["huge.jpg"].status == "error"
        assert "over the 200,000-byte cap" in rows["huge.jpg"].error
        assert sum(rows[p].digit == d for p, d in truth.items()) >= 0.95 * len(truth)
        assert {rows[p].worker for p in truth} == {"signdigits@remote"}
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        worker_log.close()
        proxy.close()
        redis.stop()
