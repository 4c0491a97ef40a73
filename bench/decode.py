"""How long read_photo takes per image, with the JPEG fast path and without it.

:func:`serving.photo.read_photo` on the files of FOLDER (the dataset by default; a folder
of foreign photos, 640 x 480 webcam frames, shows the reduced-size decoding), from bytes in
memory as a worker decodes them, one thread: as served (libjpeg-turbo through simplejpeg,
at the DCT scale that keeps 240 pixels a side), and with the fast path turned off
(Pillow alone, with its JPEG draft at the same scale). Best of 5 passes each, ROUNDS
rounds alternating; prints CPU-us per image (process CPU time: what a busy machine
disturbs least), and the decoded size most files came out at.

    .venv/bin/python -m signdigits.bench.decode [FOLDER] [ROUNDS]   (default: the dataset, 3)

FOLDER "" is the dataset too. Prints the files' count, then one line a round::

    500 files under /work/shared/datasets/foreign-photos/cyril; 500 are 640x480, decoded at 320x240
    as served 1454 us per image, Pillow alone 1432 us: 0.99x
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from signdigits.bench.arguments import folder_or_dataset, positive_int

PASSES = 5


def cpu_us_per_image(datas: list[bytes], decoder) -> float:
    """Best of PASSES passes of read_photo over ``datas``, with ``decoder`` in place of the
    JPEG fast path (``photo.decode_rgb``), restored after."""
    from signdigits.serving import photo

    served = photo.decode_rgb
    photo.decode_rgb = decoder
    try:
        best = float("inf")
        for _ in range(PASSES):
            start = time.process_time()
            for data in datas:
                try:  # noqa: SIM105 - suppress() would add its own cost to every image
                    photo.read_photo(data)
                except photo.ImageError:
                    pass
            best = min(best, time.process_time() - start)
    finally:
        photo.decode_rgb = served
    return best / len(datas) * 1e6


def sizes(datas: list[bytes]) -> str:
    """The commonest photo size, and the size read_photo decodes it to."""
    from collections import Counter

    from signdigits.serving import photo

    counted: Counter[tuple[tuple[int, int], tuple[int, int]]] = Counter()
    for data in datas:
        try:
            read = photo.read_photo(data)
        except photo.ImageError:
            continue
        counted[read.original_size, read.image.size] += 1
    if not counted:
        return "none decodes"
    ((original, decoded), count), = counted.most_common(1)
    return (f"{count:,} are {original[0]}x{original[1]}, decoded at "
            f"{decoded[0]}x{decoded[1]}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m signdigits.bench.decode",
        description="CPU-us per image of read_photo as served and with Pillow alone "
                    "(no JPEG fast path), from bytes in memory, one thread.")
    parser.add_argument("folder", nargs="?", type=folder_or_dataset, default="",
                        metavar="FOLDER", help="image files to decode (default, or \"\": "
                                               "the shared dataset)")
    parser.add_argument("rounds", nargs="?", type=positive_int, default=3, metavar="ROUNDS",
                        help="rounds, each timing both ways (default: 3)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from signdigits.serving.photo import decode_rgb

    root: Path = args.folder
    datas = [p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()]
    if not datas:
        raise SystemExit(f"error: {root}: no files")
    print(f"{len(datas):,} files under {root}; {sizes(datas)}", flush=True)
    for _ in range(args.rounds):
        fast = cpu_us_per_image(datas, decode_rgb)
        pillow = cpu_us_per_image(datas, lambda *args, **kwargs: None)
        print(f"as served {fast:.0f} us per image, Pillow alone {pillow:.0f} us: "
              f"{pillow / fast:.2f}x", flush=True)


if __name__ == "__main__":
    main()
