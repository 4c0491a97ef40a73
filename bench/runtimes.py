"""The model alone in each runtime, and numpy's matrix multiply as the yardstick.

209 photos of the dataset preprocessed once, then run in batches of 64 on THREADS threads
(1, as a worker process does), best of 5 passes; prints images/s (wall) and CPU-ms per
image (process CPU time: what a shared, busy machine disturbs least). Each runtime in its
own process, ROUNDS times, alternating. Last, the yardstick: numpy's float32 matrix
multiply (OpenBLAS) on THREADS threads, the GFLOP/s per CPU-second a core reaches on the
densest arithmetic there is; a runtime near it has nothing left to win in float32.

    .venv/bin/python -m signdigits.bench.runtimes [ROUNDS] [THREADS]   (default 2 1)

TensorFlow comes with the training extra (``scripts/setup dev,training``). Prints, per
round, one line per runtime, then the yardstick's line (a busy 2-core machine)::

    onnx       threads=1: 805 images/s, 1.24 CPU-ms per image, 97 GFLOP/s per CPU-second
    tensorflow threads=1: 768 images/s, 1.29 CPU-ms per image, 93 GFLOP/s per CPU-second
    yardstick  threads=1: numpy float32 matmul 2048 x 2048, 100 GFLOP/s per CPU-second (best of 5)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from signdigits.bench.arguments import default_dataset, positive_int

MODULE = "signdigits.bench.runtimes"
RUNTIMES = ("onnx", "tensorflow")
PHOTOS, BATCH, PASSES = 209, 64, 5
SIDE = 2048  # the yardstick's matrices: SIDE x SIDE float32


def measure_runtime(runtime: str, threads: int) -> str:
    """One runtime's line, measured in this process."""
    import numpy as np

    from signdigits.serving.classifier import Classifier
    from signdigits.serving.preprocess import preprocess_image

    dataset = default_dataset()
    files = [sorted((dataset / str(d)).iterdir())[i] for d in range(10) for i in range(21)]
    pixels = np.stack([preprocess_image(f) for f in files[:PHOTOS]])
    classifier = Classifier(runtime=runtime, threads=threads)
    classifier.warm_up(BATCH)
    best, cpu = 0.0, float("inf")
    for _ in range(PASSES):
        wall, process = time.perf_counter(), time.process_time()
        for i in range(0, len(pixels), BATCH):
            classifier.probabilities(pixels[i:i + BATCH])
        best = max(best, len(pixels) / (time.perf_counter() - wall))
        cpu = min(cpu, (time.process_time() - process) / len(pixels) * 1000)
    macs = classifier.info.metadata.get("multiply_adds_per_image") or 0
    return (f"{runtime:10s} threads={threads}: {best:.0f} images/s, {cpu:.2f} CPU-ms per "
            f"image, {2 * macs / cpu / 1e6:.0f} GFLOP/s per CPU-second")


def measure_yardstick(threads: int) -> str:
    """numpy's float32 matmul in this process, OpenBLAS on ``threads`` threads."""
    if "numpy" not in sys.modules:  # read once, when OpenBLAS loads
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
            os.environ.setdefault(variable, str(threads))
    import numpy as np

    a = np.random.default_rng(0).random((SIDE, SIDE), dtype=np.float32)
    a @ a
    cpu_seconds = []
    for _ in range(PASSES):
        started = time.process_time()
        a @ a
        cpu_seconds.append(time.process_time() - started)
    # Per CPU-second, as the runtimes' lines: on THREADS threads it is still one core's rate.
    return (f"yardstick  threads={threads}: numpy float32 matmul {SIDE} x {SIDE}, "
            f"{2 * SIDE**3 / min(cpu_seconds) / 1e9:.0f} GFLOP/s per CPU-second (best of 5)")


def _in_own_process(arguments: list[str], *, env: dict[str, str] | None = None) -> None:
    """This module again, in a fresh process: no runtime's threads or memory carry over."""
    done = subprocess.run([sys.executable, "-m", MODULE, *arguments], env=env)
    if done.returncode:
        sys.exit(f"error: {' '.join(arguments)} failed (exit {done.returncode})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="Images/s and CPU-ms per image of the model in each runtime, each in "
                    "its own process, alternating; then numpy's matmul as the yardstick.")
    parser.add_argument("rounds", nargs="?", type=positive_int, default=2, metavar="ROUNDS",
                        help="rounds of every runtime (default: 2)")
    parser.add_argument("threads", nargs="?", type=positive_int, default=1, metavar="THREADS",
                        help="threads of each runtime and of the yardstick (default: 1)")
    one = parser.add_mutually_exclusive_group()
    one.add_argument("--one", nargs=2, metavar=("RUNTIME", "THREADS"),
                     help="measure RUNTIME (onnx or tensorflow) once in this process and "
                          "print its line: what each round runs")
    one.add_argument("--yardstick", type=positive_int, metavar="THREADS",
                     help="the yardstick alone in this process: what the last line runs")
    args = parser.parse_args(argv)
    if args.one is not None:
        runtime, threads = args.one
        if runtime not in RUNTIMES:
            parser.error(f"--one: runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
        try:
            args.one = runtime, positive_int(threads)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"--one: THREADS: {exc}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one is not None:
        from signdigits.serving.artifact import ArtifactError

        try:
            print(measure_runtime(*args.one), flush=True)
        except ArtifactError as exc:  # e.g. TensorFlow not installed: one line, not a trace
            sys.exit(f"error: {exc}")
        return
    if args.yardstick is not None:
        print(measure_yardstick(args.yardstick), flush=True)
        return
    for _ in range(args.rounds):
        for runtime in RUNTIMES:
            _in_own_process(["--one", runtime, str(args.threads)])
    threads = str(args.threads)
    _in_own_process(["--yardstick", threads],
                    env={**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads})


if __name__ == "__main__":
    main()
