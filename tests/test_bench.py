"""The benchmark command keeps working (its figures are for people, not assertions)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.conftest import make_env, run_cli
from tests.waiting import wait_until


@pytest.mark.parametrize(("messages", "submit"), [
    ("--paths", "command"), ("--inline", "command"), ("--paths", "http")])
def test_bench_runs_on_a_tiny_folder(dataset, tmp_path, messages, submit):
    # 100 images in batches of 64 go out as 50, 25, 25 (a job's last batches halve): the
    # bench must wait for the job's 3 tasks, not the 2 that 100 / 64 suggests. A web
    # server answers before its walk is over: the bench must wait for the walk to know.
    inline = ["--inline"] if messages == "--inline" else []
    result = run_cli("bench", "--images", "100", "--workers", "1", "--batch-size", "64",
                     *inline, "--submit", submit, "--source", str(dataset), env=make_env(),
                     cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("the image bytes" in result.stderr) == bool(inline), result.stderr[-3000:]
    assert ("POST /api/jobs" in result.stderr) == (submit == "http"), result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures = dict(line.split("=", 1) for line in lines)
    assert figures["images"].startswith("100")
    assert figures["submitted_by"] == submit
    assert figures["source"] == str(dataset)
    assert figures["tasks"] == "3", figures
    for key in ("ceiling_images_per_s", "end_to_end_images_per_s"):
        assert float(figures[key]) > 0, key
    # The ceiling runs the same path with the runtime the workers use, and says where its
    # CPU went; end to end says so from the tasks' results.
    assert figures["runtime"] == "onnx"
    for key in ("cpu_ms_per_image", "ceiling_cpu_ms_per_image"):
        stages = dict(part.split(":") for part in figures[key].split(","))
        assert list(stages) == ["decode", "palms", "landmarks", "classify"], key
        # The dataset's crops are read on the whole photo: the palm detector may never run.
        assert float(stages["palms"]) >= 0, (key, stages)
        assert all(float(stages[s]) > 0 for s in ("decode", "landmarks", "classify")), \
            (key, stages)
    assert 0.8 < float(figures["with_hand"]) <= 1.0, figures  # 99% of the dataset's photos
    cpu = dict(part.split(":") for part in figures["cpu_seconds"].split(","))
    assert float(cpu["workers"]) > 0 and float(cpu["producer"]) > 0, cpu  # read from /proc
    assert float(cpu["available"]) > float(cpu["workers"]), cpu
    # The pipeline's own CPU is its workers', producer's and broker's, per image; the
    # images/s it allows is the cores' milliseconds over it.
    own_ms = float(figures["pipeline_cpu_ms_per_image"])
    own_seconds = sum(float(cpu[who]) for who in ("workers", "producer", "broker"))
    assert own_ms == pytest.approx(1000 * own_seconds / 100, abs=0.2), (own_ms, cpu)
    cores = int(figures["images"].split("cpu_threads=")[1].split()[0])
    assert float(figures["cpu_bound_images_per_s"]) == pytest.approx(1000 * cores / own_ms,
                                                                     rel=0.01), figures
    # Summed from the task events' return values: the bench sees inside the batches.
    tasks = dict(part.split(":") for part in figures["task_seconds"].split(","))
    assert float(tasks["decode_and_model"]) > 0 and float(tasks["store"]) > 0, tasks
    assert float(tasks["runtime"]) >= float(tasks["decode_and_model"]), tasks
    assert not any(name.startswith("cpu_") for name in tasks), tasks
    assert lines[-1].startswith("ratio_to_ceiling=")
    assert 0 < float(lines[-1].split("=")[1]) < 10


def test_bench_reads_foreign_photos(tmp_path):
    """``--source`` a folder of other people's photos (webcam frames in digit folders)."""
    from tests.conftest import DATASET, require

    foreign = DATASET.parent / "foreign-photos" / "cyril"
    require(foreign.is_dir(), f"foreign photos not found at {foreign}")
    result = run_cli("bench", "--images", "64", "--workers", "2", "--batch-size", "32",
                     "--source", str(foreign), env=make_env(), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = dict(line.split("=", 1) for line in result.stdout.strip().splitlines())
    assert figures["images"].startswith("64 ") and figures["images"].endswith(" workers=2")
    assert float(figures["with_hand"]) == 1.0  # a hand in every one of them
    assert "CPU-ms per image, end to end: decode" in result.stderr


def test_terminated_bench_leaves_no_worker_or_broker(dataset, tmp_path):
    from tests.test_pipeline import _server_at, _stray_processes, embedded_brokers

    bench = subprocess.Popen(
        [sys.executable, "-m", "signdigits", "bench", "--images", "400", "--workers", "1",
         "--batch-size", "8", "--source", str(dataset)],
        env=make_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    worker = f"bench-{bench.pid}@"

    def worker_started() -> list[str]:
        assert bench.poll() is None, bench.communicate()[1][-2000:]
        return _stray_processes(worker)

    wait_until(worker_started, timeout=180, message="the bench to start its worker")
    [broker] = embedded_brokers(bench.pid)
    bench.send_signal(signal.SIGTERM)  # as `kill` or a closing terminal would
    _, stderr = bench.communicate(timeout=90)
    assert bench.returncode == 130 and "interrupted" in stderr, stderr[-2000:]
    assert _stray_processes(worker) == []
    assert _stray_processes(_server_at(broker.split()[-1])) == []
