"""`kill -9` of `signdigits run` mid-job takes its broker and workers with it.

Nothing of `run` itself executes after SIGKILL, so only the kernel can end its children:
the embedded Valkey server and the Celery worker (whose pool processes follow it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_env
from tests.waiting import wait_until


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, start time) for every process, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(entry.name)] = (int(fields[1]), fields[0], fields[19])
    return found


def _descendants(root: int) -> dict[int, str]:
    """pid -> start time of every living process below ``root``."""
    table = _processes()
    below, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, state, started) in table.items():
            if ppid == parent and pid not in below and state != "Z":
                below[pid] = started
                frontier.append(pid)
    return below


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pids: dict[int, str]) -> dict[int, str]:
    """Those of ``pids`` still running (same process: same start time, not a zombie)."""
    table = _processes()
    return {pid: started for pid, started in pids.items()
            if pid in table and table[pid][2] == started and table[pid][1] != "Z"}


def _counts(database: Path) -> dict[str, int]:
    import sqlite3

    if not database.exists():
        return {}
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
        try:
            return dict(connection.execute(
                "SELECT status, count(*) FROM images GROUP BY status").fetchall())
        except sqlite3.OperationalError:
            return {}  # not migrated yet


def test_kill_9_of_run_leaves_no_broker_or_worker_behind(dataset, tmp_path):
    database = tmp_path / "sd.db"
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 - closed in finally
    run = subprocess.Popen(
        [sys.executable, "-m", "signdigits", "run", str(dataset), "--workers", "1",
         "--batch-size", "16"],
        env=make_env(database_url=f"sqlite:///{database}"), cwd=tmp_path,
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    children: dict[int, str] = {}
    try:
        # Mid-job: results are being stored, with images still pending, and the broker,
        # the worker and its pool process all running.
        def mid_job() -> bool:
            nonlocal children
            assert run.poll() is None, f"run ended: {(tmp_path / 'run.log').read_text()}"
            counts = _counts(database)
            children = _descendants(run.pid)
            commands = [_command(pid) for pid in children]
            return bool(counts.get("done") and counts.get("pending")
                        and any("server" in c for c in commands)
                        and sum("celery" in c for c in commands) >= 2)

        wait_until(mid_job, timeout=240, interval=0.05, message="run to be mid-job",
                   details=lambda: (tmp_path / "run.log").read_text())
        os.kill(run.pid, signal.SIGKILL)
        run.wait(30)
        wait_until(lambda: not _alive(children), timeout=60, interval=0.1,
                   message="run's children to exit after its SIGKILL",
                   details=lambda: str([_command(pid) for pid in _alive(children)]))
        assert _counts(database).get("pending"), "the job ended before the kill"
    finally:
        for pid in _alive(children):
            os.kill(pid, signal.SIGKILL)
        if run.poll() is None:
            run.kill()
            run.wait()
        log.close()
