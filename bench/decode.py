"""How long preprocess_image takes per image, with the JPEG fast path and without it.

preprocess_image on the files of FOLDER (the dataset by default), from bytes in memory as
a worker decodes them, one thread: as served, and with the JPEG fast path turned off
(Pillow alone, as before serving/jpeg.py). Best of 5 passes each, ROUNDS rounds
alternating; prints CPU-us per image (process CPU time: what a busy machine disturbs least).

    .venv/bin/python -m signdigits.bench.decode [FOLDER] [ROUNDS]   (default: the dataset, 3)

FOLDER "" is the dataset too. Prints the files' count, then one line a round::

    1,855 files under /work/shared/datasets/sign-language-digits
    as served 128 us per image, Pillow alone 248 us: 1.94x
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from signdigits.bench.arguments import folder_or_dataset, positive_int

PASSES = 5


def cpu_us_per_image(datas: list[bytes], decoder) -> float:
    """Best of PASSES passes of preprocess_image over ``datas``, with ``decoder`` in place
    of the JPEG fast path (``preprocess.decode_gray``), restored after."""
    from signdigits.serving import preprocess

    served = preprocess.decode_gray
    preprocess.decode_gray = decoder
    try:
        best = float("inf")
        for _ in range(PASSES):
            start = time.process_time()
            for data in datas:
                try:  # noqa: SIM105 - suppress() would add its own cost to every image
                    preprocess.preprocess_image(data)
                except preprocess.ImageError:
                    pass
            best = min(best, time.process_time() - start)
    finally:
        preprocess.decode_gray = served
    return best / len(datas) * 1e6


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m signdigits.bench.decode",
        description="CPU-us per image of preprocess_image as served and with Pillow alone "
                    "(no JPEG fast path), from bytes in memory, one thread.")
    parser.add_argument("folder", nargs="?", type=folder_or_dataset, default="",
                        metavar="FOLDER", help="image files to decode (default, or \"\": "
                                               "the shared dataset)")
    parser.add_argument("rounds", nargs="?", type=positive_int, default=3, metavar="ROUNDS",
                        help="rounds, each timing both ways (default: 3)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from signdigits.serving.preprocess import decode_gray

    root: Path = args.folder
    datas = [p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()]
    if not datas:
        raise SystemExit(f"error: {root}: no files")
    print(f"{len(datas):,} files under {root}")
    for _ in range(args.rounds):
        fast = cpu_us_per_image(datas, decode_gray)
        pillow = cpu_us_per_image(datas, lambda *args, **kwargs: None)
        print(f"as served {fast:.0f} us per image, Pillow alone {pillow:.0f} us: "
              f"{pillow / fast:.2f}x", flush=True)


if __name__ == "__main__":
    main()
