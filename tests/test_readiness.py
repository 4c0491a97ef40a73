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
