"""`signdigits ready`: a worker is ready only when every process that runs tasks has its model."""

from __future__ import annotations

from tests.conftest import Stack
from tests.waiting import wait_until


def test_ready_counts_pool_processes_with_the_model(redis_url, tmp_path):
    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    try:
        worker = stack.start_worker(concurrency=2)  # waits for models_loaded: 2 of 2
        ready = stack.cli("ready", worker.name)
        assert ready.returncode == 0, ready.stderr
        assert "ready, 2 of 2 processes have the model loaded" in ready.stdout
    finally:
        stack.stop()


def test_a_solo_worker_counts_itself(redis_url, tmp_path):
    # A solo pool runs tasks in the worker's main process, which loads the model before it
    # starts consuming: its first answer already counts that one process as loaded.
    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    try:
        worker = stack.start_worker(extra=("--pool", "solo"), wait=False)

        def replied():  # each asking waits up to 2 s for the worker's reply
            ready = stack.cli("ready", worker.name, "--timeout", "2")
            return ready if "no reply" not in ready.stderr else None

        ready = wait_until(replied, timeout=120, interval=0, message="the solo worker's reply",
                           details=worker.log_tail)
        assert ready.returncode == 0, ready.stderr
        assert "ready, 1 of 1 processes have the model loaded" in ready.stdout
    finally:
        stack.stop()


def test_a_second_worker_of_one_name_is_refused_and_a_restart_is_not(redis_url, tmp_path):
    """Two workers of one name (the default, signdigits@%h, on one host) overwrote each
    other's heartbeat, and the reconciler put back the batches one of them was reading.
    A worker SIGKILLed leaves its heartbeat for 15 s: its restart under the same name is
    not refused for it."""
    import os
    import signal
    import subprocess
    import sys

    from signdigits.broker.liveness import workers_online
    from signdigits.worker.readiness import wait_for_models

    stack = Stack(redis_url, f"sqlite:///{tmp_path / 'r.db'}", tmp_path)
    restarted = None
    try:
        worker = stack.start_worker(concurrency=1)
        wait_until(lambda: worker.name in workers_online(stack.app()), timeout=30,
                   message="the worker's heartbeat")
        second = stack.cli("worker", "-n", worker.name, "--concurrency", "1", timeout=120)
        lines = (second.stdout + second.stderr).strip().splitlines()
        assert second.returncode == 2 and len(lines) == 1, lines
        assert lines[0].startswith(f"error: a worker named {worker.name} is already running")
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(30)
        assert worker.name in workers_online(stack.app())  # its heartbeat outlives it
        restarted = subprocess.Popen(
            [sys.executable, "-m", "signdigits", "worker", "-n", worker.name,
             "--concurrency", "1"], env=stack.env, cwd=tmp_path, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        wait_for_models(stack.app(), name=worker.name,
                        alive=lambda: restarted.poll() is None, timeout=120)
    finally:
        if restarted is not None and restarted.poll() is None:
            os.killpg(restarted.pid, signal.SIGTERM)
            restarted.wait(60)
        stack.stop()
