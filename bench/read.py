"""How long a worker takes to read one image file, without decoding it.

The files of FOLDER (the dataset by default) read the way worker/batch.py reads them
(files/reading.py's JobFolder, capped at SIGNDIGITS_MAX_FILE_BYTES), best of 5 passes,
one thread. Compare two commits by running it in a checkout of each.

    .venv/bin/python -m signdigits.bench.read [FOLDER] [FILES]   (default: the dataset, 2000)

FOLDER "" is the dataset too. Prints one line::

    1,853 files from /work/shared/datasets/sign-language-digits: 35.9 us an image (best of 5
    passes); peak memory 48 MB

(one line on screen, wrapped here).
"""

from __future__ import annotations

import argparse
import resource
import time
from itertools import islice

from signdigits.bench.arguments import folder_or_dataset, positive_int

PASSES = 5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m signdigits.bench.read",
        description="Microseconds a worker takes to read one image file (no decoding).")
    parser.add_argument("folder", nargs="?", type=folder_or_dataset, default="",
                        metavar="FOLDER", help="images to read (default, or \"\": the shared "
                                               "dataset)")
    parser.add_argument("files", nargs="?", type=positive_int, default=2000, metavar="FILES",
                        help="at most this many of them (default: 2000)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from signdigits.config.settings import get_settings
    from signdigits.files.reading import JobFolder
    from signdigits.producer.scan import scan_folder

    root = args.folder.resolve()
    cap = get_settings().max_file_bytes
    # A folder the walk could not list is no file to read.
    paths = [p for p in islice(scan_folder(root), args.files) if isinstance(p, str)]
    if not paths:
        raise SystemExit(f"error: {root}: no images")
    folder = JobFolder(root, allowed_roots=[])
    best = float("inf")
    for _ in range(PASSES):
        started = time.perf_counter()
        for relative in paths:
            folder.read(relative, max_bytes=cap)
        best = min(best, time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(paths):,} files from {root}: {best / len(paths) * 1e6:.1f} us an image "
          f"(best of 5 passes); peak memory {peak:.0f} MB")


if __name__ == "__main__":
    main()
