"""Start-up and memory of serving: a worker's time to ready, its memory, ``run``'s time.

How soon a worker with 2 processes is ready in every process (the classifier loaded and
warmed, the hand models' hashes checked and each decode thread's palm detector and
landmark model loaded and run once), and each worker process's peak memory (VmHWM) after
a job, with the hand models loaded (targets: ready within 3 s, each process under
250 MB); then how long ``signdigits run`` takes
on a small folder (until its summary line, and until it exits). ROUNDS times each, on an
embedded Valkey and SQLite files of its own. SIGNDIGITS_RUNTIME=tensorflow to compare.

    .venv/bin/python -m signdigits.bench.startup [FOLDER] [ROUNDS]   (default "" 3)

FOLDER: images for the job and for ``run`` (default, or "": 10 photos copied from the
dataset, one of each digit). Prints one line a round for the worker, then one for ``run``::

    worker ready (2 processes, onnx): 3.36 s; after a job each process peaked at 179, 174 MB
    signdigits run on /tmp/signdigits-bench-start-eyciyt3h/photos (onnx): summary after
    4.07 s, exit 0 after 4.62 s; 10 classified, 0 below threshold 0.915, 0 errors, ...

(the second line is one line on screen, wrapped here).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from signdigits.bench.arguments import default_dataset, positive_int

CLI = [sys.executable, "-m", "signdigits"]


def copy_photos(target: Path) -> Path:
    """One photo of each digit from the dataset, in digit folders under ``target``."""
    dataset = default_dataset()
    for digit in range(10):
        folder = target / str(digit)
        folder.mkdir(parents=True)
        shutil.copyfile(sorted((dataset / str(digit)).iterdir())[0], folder / "a.jpg")
    return target


def worker_rounds(folder: Path, tmp: Path, *, rounds: int, runtime: str) -> None:
    """Start a 2-process worker, time it to ready, run a job on it, read its memory."""
    from signdigits.bench.procstat import children, peak_rss_mb
    from signdigits.broker.app import create_app
    from signdigits.config.settings import get_settings
    from signdigits.stack.local import EmbeddedBroker, WorkerProcess
    from signdigits.worker.readiness import wait_for_models

    broker = EmbeddedBroker()
    url = broker.start()
    env = {**os.environ, "SIGNDIGITS_BROKER_URL": url,
           "SIGNDIGITS_DATABASE_URL": f"sqlite:///{tmp / 'start.db'}"}
    app = create_app(get_settings().model_copy(update={"broker_url": url}))
    try:
        subprocess.run([*CLI, "db", "upgrade"], env=env, check=True, capture_output=True)
        for n in range(rounds):
            name = f"start-{os.getpid()}-{n}@localhost"
            started = time.perf_counter()
            worker = WorkerProcess(env=env, concurrency=2, name=name, log=tmp / f"{n}.log")
            try:
                wait_for_models(app, name=name, alive=worker.alive, timeout=120)
                ready = time.perf_counter() - started
                job = subprocess.run([*CLI, "submit", str(folder), "--wait"], env=env,
                                     capture_output=True, text=True)
                peaks = [peak_rss_mb(pid) for pid in children(worker.process.pid)]
            finally:
                worker.stop()
            print(f"worker ready (2 processes, {runtime}): {ready:.2f} s; after a job each "
                  f"process peaked at {', '.join(f'{p:.0f}' for p in peaks)} MB"
                  + ("" if job.returncode == 0 else f" (submit failed: {job.stderr[-300:]})"),
                  flush=True)
    finally:
        broker.stop()


def run_rounds(folder: Path, tmp: Path, *, rounds: int, runtime: str) -> None:
    """``signdigits run`` on ``folder`` (its own broker and worker), timed to its summary."""
    env = {k: v for k, v in os.environ.items() if k != "SIGNDIGITS_BROKER_URL"}
    env["SIGNDIGITS_DATABASE_URL"] = f"sqlite:///{tmp / 'run.db'}"
    for _ in range(rounds):
        started = time.perf_counter()
        # The summary is on stdout (progress on stderr, which is left to the terminal).
        run = subprocess.Popen([*CLI, "run", str(folder)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
        summary, at = "", None
        assert run.stdout is not None  # stdout=PIPE
        for line in run.stdout:  # the summary: "N classified, ... of N images; R images/s"
            if " classified, " in line and at is None:
                summary, at = line.strip(), time.perf_counter() - started
        run.wait()
        took = time.perf_counter() - started
        print(f"signdigits run on {folder} ({runtime}): summary after "
              + (f"{at:.2f} s" if at is not None else "never") + f", exit {run.returncode} "
              f"after {took:.2f} s; {summary}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m signdigits.bench.startup",
        description="Seconds until a 2-process worker has its model loaded, its processes' "
                    "peak memory after a job, and seconds of `signdigits run` on a small "
                    "folder.")
    parser.add_argument("folder", nargs="?", default="", metavar="FOLDER",
                        help="images to classify (default, or \"\": 10 photos copied from "
                             "the shared dataset)")
    parser.add_argument("rounds", nargs="?", type=positive_int, default=3, metavar="ROUNDS",
                        help="rounds of each measurement (default: 3)")
    args = parser.parse_args(argv)
    if args.folder and not Path(args.folder).is_dir():
        parser.error(f"argument FOLDER: {args.folder}: no such folder")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from signdigits.config.settings import SettingsInvalid, get_settings

    try:
        runtime = get_settings().runtime
    except SettingsInvalid as exc:
        sys.exit(f"error: {exc}")
    tmp = Path(tempfile.mkdtemp(prefix="signdigits-bench-start-"))
    try:
        folder = Path(args.folder) if args.folder else copy_photos(tmp / "photos")
        worker_rounds(folder, tmp, rounds=args.rounds, runtime=runtime)
        run_rounds(folder, tmp, rounds=args.rounds, runtime=runtime)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
