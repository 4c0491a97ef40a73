"""How small a hand the reader still finds and reads: close-ups shrunk onto a big picture.

Each of COUNT close-up photos from FOLDER (digit folders; by default the shared
``cyril`` webcam close-ups, the hand filling most of the frame) is shrunk to a share of
a 1280 x 960 picture's width and pasted at a random place onto smooth random colours (no
hand of its own), saved as a JPEG, and read as a worker reads it (``HandReader.look``:
the hand finder, the classifier). Prints, per share of the width: photos with a hand
found, photos read right, how they were read, and the CPU-ms a photo took on one thread
(decode, find, classify). The hand itself is narrower than its
photo (about 60% of a ``cyril`` frame), so a share of 0.2 is a hand about an eighth of
the picture wide.

    .venv/bin/python -m signdigits.bench.hand_size [FOLDER] [--count 20] [--shares 0.1,0.2]

A composite is not a photo (a pasted rectangle, no room light): this measures the finder's
reach in size, not its accuracy on people's photos.
"""

from __future__ import annotations

import argparse
import io
import random
import time
from collections import Counter
from pathlib import Path

from signdigits.bench.arguments import default_dataset, positive_int

CANVAS = (1280, 960)


def default_close_ups() -> Path:
    return default_dataset().parent / "foreign-photos" / "cyril"


def shares(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected shares like 0.1,0.2, got {text!r}") from None
    if not values or not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"shares must lie in (0, 1], got {text!r}")
    return values


def composite(close_up: Path, share: float, rng: random.Random, seed: int) -> bytes:
    import numpy as np
    from PIL import Image, ImageFilter

    colours = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), np.uint8)
    canvas = Image.fromarray(colours).resize(CANVAS, Image.Resampling.BICUBIC)
    canvas = canvas.filter(ImageFilter.GaussianBlur(3))
    with Image.open(close_up) as opened:
        hand = opened.convert("RGB")
    width = max(8, round(CANVAS[0] * share))
    height = max(8, round(hand.height * width / hand.width))
    canvas.paste(hand.resize((width, height)),
                 (rng.randint(0, CANVAS[0] - width), rng.randint(0, max(0, CANVAS[1] - height))))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m signdigits.bench.hand_size",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=None,
                        help="digit folders of close-ups (default: foreign-photos/cyril)")
    parser.add_argument("--count", type=positive_int, default=20, help="photos per share")
    parser.add_argument("--shares", type=shares, default=shares("0.1,0.15,0.2,0.3,0.5"),
                        help="shares of the picture's width, comma-separated")
    args = parser.parse_args()
    folder = args.folder or default_close_ups()
    photos = sorted(p for d in range(10) if (folder / str(d)).is_dir()
                    for p in (folder / str(d)).iterdir())
    if not photos:
        parser.error(f"{folder}: no photos in folders named 0-9")

    from signdigits.config.settings import get_settings
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.models import models_dir
    from signdigits.serving.reader import HandReader

    settings = get_settings()
    reader = HandReader.from_folder(Classifier(settings.model_path),
                                    models_dir(settings.hand_models_dir))
    rng = random.Random(0)
    picked = rng.sample(photos, min(args.count, len(photos)))
    print(f"{len(picked)} close-ups from {folder}, on a {CANVAS[0]}x{CANVAS[1]} picture")
    for share in args.shares:
        found = right = 0
        cpu = 0.0
        how: Counter[str] = Counter()
        for seed, path in enumerate(picked):
            data = composite(path, share, rng, seed)
            started = time.thread_time()
            reading = reader.look(data)[1]
            cpu += time.thread_time() - started
            how[reading.how] += 1
            if reading.answer is not None:
                found += 1
                right += reading.answer.prediction.digit == int(path.parent.name)
        ways = ", ".join(f"{n} {way}" for way, n in how.most_common())
        print(f"share {share:.2f}: found {found}/{len(picked)}, right {right}/{len(picked)} "
              f"({ways}); {1000 * cpu / len(picked):.0f} CPU-ms a photo, one thread")


if __name__ == "__main__":
    main()
