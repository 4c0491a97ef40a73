"""How small a hand the reader still finds and reads: close-ups shrunk onto a big picture.

Each of COUNT close-up photos from FOLDER (digit folders; by default the shared
``cyril`` webcam close-ups, the hand filling most of the frame) is shrunk to a share of
a picture's width (1280 x 960, or ``--size``) and pasted at a random place (``--seed``)
onto smooth random colours (no hand of its own), saved as a JPEG, and read as a worker
reads it (``HandReader.look``: the hand finder, the classifier). Prints, per share of
the width: photos with a hand found, photos read right, those at or above the model's
default threshold and how many of them are right, how they were read, and the CPU-ms a
photo took on one thread (decode, find, classify); then the same for the pictures alone,
without a hand: what a photo with no hand costs (every search), and whether anything is
found on colours. The hand itself is narrower than its photo (about 60% of a ``cyril``
frame), so a share of 0.2 is a hand about an eighth of the picture wide.

    .venv/bin/python -m signdigits.bench.hand_size [FOLDER] [--count 20] [--shares 0.1,0.2]
        [--size 640x480] [--seed 0] [--save DIR]

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
from typing import TYPE_CHECKING

from signdigits.bench.arguments import default_dataset, positive_int

if TYPE_CHECKING:
    from signdigits.serving.reader import HandReader

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


def picture_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 640x480, got {text!r}") from None
    if not (64 <= width <= 8192 and 64 <= height <= 8192):
        raise argparse.ArgumentTypeError(f"sides must lie in 64-8192 pixels, got {text!r}")
    return width, height


def composite(close_up: Path | None, share: float, rng: random.Random, seed: int,
              size: tuple[int, int] = CANVAS) -> bytes:
    """``close_up`` shrunk to ``share`` of a ``size`` picture's width on smooth random
    colours; the colours alone for None."""
    import numpy as np
    from PIL import Image, ImageFilter

    colours = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), np.uint8)
    canvas = Image.fromarray(colours).resize(size, Image.Resampling.BICUBIC)
    canvas = canvas.filter(ImageFilter.GaussianBlur(3))
    if close_up is not None:
        with Image.open(close_up) as opened:
            hand = opened.convert("RGB")
        width = max(8, round(size[0] * share))
        height = max(8, round(hand.height * width / hand.width))
        canvas.paste(hand.resize((width, height)), (rng.randint(0, size[0] - width),
                                                    rng.randint(0, max(0, size[1] - height))))
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
    parser.add_argument("--size", type=picture_size, default=CANVAS, metavar="WxH",
                        help="the picture's size (default 1280x960; a webcam's 640x480)")
    parser.add_argument("--seed", type=int, default=0,
                        help="which close-ups, and where they are put")
    parser.add_argument("--save", type=Path, default=None, metavar="DIR",
                        help="also write the pictures here (SHARE/DIGIT/NAME.jpg, no-hand/N.jpg), "
                             "for `signdigits run` to read them through the whole pipeline")
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
    rng = random.Random(args.seed)
    picked = rng.sample(photos, min(args.count, len(photos)))
    size = args.size
    print(f"{len(picked)} close-ups from {folder}, on a {size[0]}x{size[1]} picture")
    for share in args.shares:
        pictures = [(path, composite(path, share, rng, seed, size))
                    for seed, path in enumerate(picked)]
        _save(args.save, f"{share:g}", pictures)
        print(f"share {share:g}: {_measure(reader, pictures)}")
    alone: list[tuple[Path | None, bytes]] = [(None, composite(None, 0, rng, seed, size))
                                              for seed in range(len(picked))]
    _save(args.save, "no-hand", alone)
    print(f"no hand: {_measure(reader, alone)}")


def _save(root: Path | None, name: str, pictures: list[tuple[Path | None, bytes]]) -> None:
    """The pictures under ``root``/``name``: in their close-up's digit folder, the pictures
    without a hand numbered."""
    if root is None:
        return
    for number, (path, data) in enumerate(pictures):
        target = root / name / (f"{path.parent.name}/{path.name}" if path else f"{number}.jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _measure(reader: HandReader, photos: list[tuple[Path | None, bytes]]) -> str:
    """Each photo read as a worker reads it (its digit the folder's name; None: no hand)."""
    found = right = sure = sure_right = 0
    threshold = reader.classifier.info.default_threshold
    cpu = 0.0
    how: Counter[str] = Counter()
    for path, data in photos:
        started = time.thread_time()
        reading = reader.look(data)[1]
        cpu += time.thread_time() - started
        how[reading.how] += 1
        if reading.answer is not None:
            found += 1
            is_right = path is not None and reading.answer.prediction.digit == int(path.parent.name)
            right += is_right
            if not reading.doubtful(threshold):
                sure += 1
                sure_right += is_right
    ways = ", ".join(f"{n} {way}" for way, n in how.most_common())
    return (f"found {found}/{len(photos)}, right {right}/{len(photos)}, at or above the "
            f"threshold {sure} ({sure_right} right) ({ways}); "
            f"{1000 * cpu / len(photos):.0f} CPU-ms a photo, one thread")


if __name__ == "__main__":
    main()
