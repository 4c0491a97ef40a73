"""What the reader makes of a photo's parts that hold no hand: strips cut beside the hand.

Each photo of FOLDER (digit folders of real photos, one signing hand each; by default the
shared ``modi`` webcam photos: a face, a forearm, a room) is read once to find its hand;
the parts of the photo left and right of the hand's box (``--margin`` of the photo's
width off it) that are at least ``--least`` of its width are cut out as PNGs and read as
a worker reads a photo (``HandReader.look``). A strip holds the signer's face, shoulder,
forearm or the room, never the hand. Prints how many strips gave a "hand", how many were
read at or above the model's default threshold (a confident answer about no hand), how
each was read, and the landmark model's presence and the share of the strip of each
"hand" kept; ``--list`` names them.

    .venv/bin/python -m signdigits.bench.beside_hand [FOLDER] [--every 2] [--list]

Every strip that gives a "hand" is a false one; one read at or above the threshold is the
failure this measures.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from signdigits.bench.arguments import default_dataset, fraction, positive_int

if TYPE_CHECKING:
    from PIL import Image

    from signdigits.serving.reader import HandReader


def default_photos() -> Path:
    return default_dataset().parent / "foreign-photos" / "modi"


def strips(image: Image.Image, box: tuple[float, float, float, float], *, margin: float,
           least: float) -> list[tuple[str, Image.Image]]:
    """The parts of ``image`` left and right of ``box`` (``margin`` of the width off it),
    those at least ``least`` of the width, named by their side."""
    width, height = image.size
    left, right = int(box[0] - margin * width), int(box[2] + margin * width) + 1
    cut = [("left", (0, 0, left, height)), ("right", (right, 0, width, height))]
    return [(side, image.crop(area)) for side, area in cut
            if area[2] - area[0] >= least * width]


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m signdigits.bench.beside_hand",
        description="What the reader finds in strips cut beside a photo's hand.")
    parser.add_argument("folder", nargs="?", type=Path, default=None,
                        help="digit folders of photos with one hand each (default: "
                             "foreign-photos/modi)")
    parser.add_argument("--every", type=positive_int, default=1,
                        help="read every n-th photo (default: all)")
    parser.add_argument("--margin", type=fraction, default=0.05,
                        help="share of the width left between the hand's box and a strip")
    parser.add_argument("--least", type=fraction, default=0.3,
                        help="the narrowest strip kept, as a share of the width")
    parser.add_argument("--list", action="store_true", help="name every strip that gave a hand")
    args = parser.parse_args()
    folder = args.folder or default_photos()
    photos = sorted(p for d in range(10) if (folder / str(d)).is_dir()
                    for p in (folder / str(d)).iterdir())[::args.every]
    if not photos:
        parser.error(f"{folder}: no photos in folders named 0-9")

    from signdigits.config.settings import get_settings
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.models import models_dir
    from signdigits.serving.reader import HandReader

    settings = get_settings()
    reader = HandReader.from_folder(Classifier(settings.model_path),
                                    models_dir(settings.hand_models_dir))
    print(f"{len(photos)} photos from {folder}; strips at least {args.least:g} of the "
          f"width, {args.margin:g} of it off the hand")
    print(_measure(reader, photos, margin=args.margin, least=args.least, named=args.list))


def _measure(reader: HandReader, photos: list[Path], *, margin: float, least: float,
             named: bool) -> str:
    from signdigits.files.reading import ImageError

    threshold = reader.classifier.info.default_threshold
    count = found = sure = 0
    how: Counter[str] = Counter()
    lines = []
    unreadable = 0
    for number, path in enumerate(photos, 1):
        if number % 100 == 0:
            print(f"{number} of {len(photos)} photos read", file=sys.stderr, flush=True)
        try:
            photo, reading = reader.look(path)
        except ImageError:
            unreadable += 1
            continue
        if reading.answer is None:
            continue
        for side, strip in strips(photo.image, reading.answer.hand.box, margin=margin,
                                  least=least):
            data = io.BytesIO()
            strip.save(data, format="PNG")
            looked, seen = reader.look(data.getvalue())
            count += 1
            how[seen.how] += 1
            if seen.answer is None:
                continue
            found += 1
            sure += not seen.doubtful(threshold)
            hand = seen.answer.hand
            x0, y0, x1, y1 = hand.box
            share = max(x1 - x0, y1 - y0) / max(looked.image.size)
            lines.append(f"  {path.parent.name}/{path.name} {side}: presence "
                         f"{hand.landmarks.presence:.3f}, {share:.1%} of the strip, read "
                         f"{seen.answer.prediction.digit} at {seen.confidence:.3f} ({seen.how})")
    ways = ", ".join(f"{n} {way}" for way, n in how.most_common())
    summary = (f"{count} strips: a hand found in {found}, read at or above the threshold "
               f"{threshold:g} in {sure} ({ways})"
               + (f"; {unreadable} photos unreadable, skipped" if unreadable else ""))
    return "\n".join([summary, *lines]) if named else summary


if __name__ == "__main__":
    main()
