"""The classifier alone in each runtime, on real hands' features, and the two runtimes' parity.

The hands of PHOTOS dataset photos (and of a folder of foreign photos, when given) are
found once, in this process, and their features (what the classifier reads) saved; then
each runtime, in its own process, ROUNDS times, alternating, classifies them in batches of
64 on THREADS threads (1, as a worker process does), best of 5 passes, and prints hands/s
(wall) and CPU-ms per hand (process CPU time: what a shared, busy machine disturbs least).
Last, the parity line: the largest difference between the two runtimes' probabilities on
every hand, and how many hands' digits differ.

    .venv/bin/python -m signdigits.bench.runtimes [ROUNDS] [THREADS] [--photos DIR]
        (default 2 1)

TensorFlow comes with the training extra (``scripts/setup dev,training``). Prints (here
for a stand-in classifier of 128 hidden units)::

    features of 209 hands from 209 photos (/work/shared/datasets/sign-language-digits)
    onnx       threads=1: 458,378 hands/s, 0.002 CPU-ms per hand
    tensorflow threads=1: 26,253 hands/s, 0.023 CPU-ms per hand
    parity: probabilities within 3.3e-07, digits equal on 209 of 209 hands
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from signdigits.bench.arguments import default_dataset, positive_int

MODULE = "signdigits.bench.runtimes"
RUNTIMES = ("onnx", "tensorflow")
PHOTOS, BATCH, PASSES = 209, 64, 5
TOLERANCE = 1e-4  # what tests/test_onnx_serving.py holds the two runtimes to


def hand_features_of(photos: list[Path]):
    """(hands, FEATURE_COUNT) float32: the features of the surest hand of each photo with one."""
    import numpy as np

    from signdigits.config.settings import get_settings
    from signdigits.serving.hands.features import hand_features
    from signdigits.serving.hands.finder import HandFinder
    from signdigits.serving.hands.models import models_dir
    from signdigits.serving.reader import look

    finder = HandFinder(models_dir(get_settings().hand_models_dir))
    rows = []
    for path in photos:
        hands = look(finder, path)[1]
        if hands:
            rows.append(hand_features(hands[0].landmarks.points))
    return np.stack(rows)


def sample(folder: Path) -> list[Path]:
    """21 photos of each digit folder 0-9 (fewer where a folder has fewer), first by name."""
    return [path for digit in range(10) for path in sorted((folder / str(digit)).iterdir())[:21]
            if path.is_file()][:PHOTOS]


def measure_runtime(runtime: str, threads: int, features: Path) -> str:
    """One runtime's line, measured in this process; its probabilities saved beside
    ``features`` for the parity line."""
    import numpy as np

    from signdigits.config.settings import get_settings
    from signdigits.serving.classifier import Classifier

    hands = np.load(features)
    classifier = Classifier(get_settings().model_path, runtime=runtime, threads=threads)
    classifier.warm_up(BATCH)
    best, cpu = 0.0, float("inf")
    for _ in range(PASSES):
        wall, process = time.perf_counter(), time.process_time()
        for i in range(0, len(hands), BATCH):
            classifier.probabilities(hands[i:i + BATCH])
        best = max(best, len(hands) / (time.perf_counter() - wall))
        cpu = min(cpu, (time.process_time() - process) / len(hands) * 1000)
    np.save(features.with_suffix(f".{runtime}.npy"), classifier.probabilities(hands))
    return f"{runtime:10s} threads={threads}: {best:,.0f} hands/s, {cpu:.3f} CPU-ms per hand"


def parity(features: Path) -> str:
    import numpy as np

    onnx, tensorflow = (np.load(features.with_suffix(f".{r}.npy")) for r in RUNTIMES)
    worst = float(np.abs(onnx - tensorflow).max())
    same = int((onnx.argmax(axis=1) == tensorflow.argmax(axis=1)).sum())
    verdict = "" if worst <= TOLERANCE else f" (over the {TOLERANCE:.0e} the tests hold)"
    return (f"parity: probabilities within {worst:.1e}{verdict}, digits equal on {same} of "
            f"{len(onnx)} hands")


def _in_own_process(arguments: list[str]) -> None:
    """This module again, in a fresh process: no runtime's threads or memory carry over."""
    done = subprocess.run([sys.executable, "-m", MODULE, *arguments])
    if done.returncode:
        sys.exit(f"error: {' '.join(arguments)} failed (exit {done.returncode})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="Hands/s and CPU-ms per hand of the classifier in each runtime, each in "
                    "its own process, alternating, on real hands' features; then their parity.")
    parser.add_argument("rounds", nargs="?", type=positive_int, default=2, metavar="ROUNDS",
                        help="rounds of every runtime (default: 2)")
    parser.add_argument("threads", nargs="?", type=positive_int, default=1, metavar="THREADS",
                        help="threads of each runtime (default: 1)")
    parser.add_argument("--photos", type=Path, default=None, metavar="DIR",
                        help="digit folders 0-9 to take the hands from (default: the shared "
                             "dataset)")
    parser.add_argument("--one", nargs=3, metavar=("RUNTIME", "THREADS", "FEATURES"),
                        help="measure RUNTIME (onnx or tensorflow) once in this process on "
                             "the features saved in FEATURES (.npy) and print its line: what "
                             "each round runs")
    args = parser.parse_args(argv)
    if args.photos is not None and not args.photos.is_dir():
        parser.error(f"--photos: {args.photos}: no such folder")
    if args.one is not None:
        runtime, threads, features = args.one
        if runtime not in RUNTIMES:
            parser.error(f"--one: runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
        try:
            args.one = runtime, positive_int(threads), Path(features)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"--one: THREADS: {exc}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from signdigits.serving.artifact import ArtifactError
    from signdigits.serving.hands.models import HandModelsError

    if args.one is not None:
        try:
            print(measure_runtime(*args.one), flush=True)
        except ArtifactError as exc:  # e.g. TensorFlow not installed: one line, not a trace
            sys.exit(f"error: {exc}")
        return
    import numpy as np

    folder = args.photos or default_dataset()
    with tempfile.TemporaryDirectory(prefix="signdigits-bench-runtimes-") as scratch:
        features = Path(scratch) / "features.npy"
        photos = sample(folder)
        try:
            np.save(features, hand_features_of(photos))
        except (HandModelsError, ValueError) as exc:  # ValueError: no hand in any photo
            sys.exit(f"error: {exc}")
        print(f"features of {len(np.load(features))} hands from {len(photos)} photos "
              f"({folder})", flush=True)
        for _ in range(args.rounds):
            for runtime in RUNTIMES:
                _in_own_process(["--one", runtime, str(args.threads), str(features)])
        print(parity(features), flush=True)


if __name__ == "__main__":
    main()
