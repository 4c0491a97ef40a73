"""Several hands in one photo: are all found, and read left to right?

Builds COUNT test photos from real ones: one to four photos drawn from FOLDERS (digit
folders; by default the shared foreign webcam photos, ``cyril`` and ``modi``) placed side
by side on a plain background, each at 60-100% of the row's height and at its own
height in the row, with no gap or a gap of up to a tenth of a photo, and writes down the
digits they sign, left to right. Reads each as a worker reads it (``read_photo``, the
hand finder, the classifier; one thread) and prints, per number of hands: photos, the
whole string right, the number of hands right, and the CPU-ms per photo; then photos/s
and hands/s for the lot on one core.

    .venv/bin/python -m signdigits.bench.several_hands [FOLDERS...] [--count 200]
        [--seed 0] [--resting] [--out DIR]

``--resting`` adds to each photo one more, turned 110-250 degrees (fingers down, as a
hand resting by someone's side or on a table is held), at a random place in the row: its
hand is not signing, and the digits expected stay those of the others.

``--out DIR`` also writes the photos (and ``expected.csv``: file, digits) for
``signdigits bench --source DIR``, which times them end to end through the workers.
A composite is not a group photo (pasted rectangles, one light per photo): this measures
finding and ordering several hands, not people's group photos.
"""

from __future__ import annotations

import argparse
import io
import random
import time
from collections import Counter
from pathlib import Path

from signdigits.bench.arguments import default_dataset, positive_int

HANDS = (1, 2, 3, 4)
ROW_HEIGHT = 480


def default_folders() -> list[Path]:
    foreign = default_dataset().parent / "foreign-photos"
    return [foreign / "cyril", foreign / "modi"]


def labelled_photos(folders: list[Path]) -> list[tuple[Path, int]]:
    return sorted((photo, digit) for folder in folders for digit in range(10)
                  if (folder / str(digit)).is_dir()
                  for photo in (folder / str(digit)).iterdir() if photo.is_file())


def composite(picks: list[tuple[Path, int]], rng: random.Random,
              resting: Path | None = None) -> tuple[bytes, str]:
    """The photos side by side as one JPEG, and the digits they sign left to right; with
    ``resting`` turned fingers down at a random place among them, signing nothing."""
    from PIL import Image

    gap = rng.choice([0, 0, rng.randint(1, ROW_HEIGHT // 10)])
    turns = [0.0] * len(picks)
    paths = [path for path, _ in picks]
    if resting is not None:
        place = rng.randint(0, len(paths))
        paths.insert(place, resting)
        turns.insert(place, rng.uniform(110, 250))
    photos = []
    for path, turn in zip(paths, turns, strict=True):
        with Image.open(path) as opened:
            photo = opened.convert("RGB").rotate(turn, expand=True)
        height = round(ROW_HEIGHT * rng.uniform(0.6, 1.0))
        photos.append(photo.resize((round(photo.width * height / photo.height), height)))
    width = sum(photo.width for photo in photos) + gap * (len(photos) - 1)
    grey = rng.randint(0, 255)
    canvas = Image.new("RGB", (width, ROW_HEIGHT), (grey, grey, grey))
    left = 0
    for photo in photos:
        canvas.paste(photo, (left, rng.randint(0, ROW_HEIGHT - photo.height)))
        left += photo.width + gap
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90)
    return out.getvalue(), "".join(str(digit) for _, digit in picks)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m signdigits.bench.several_hands",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path,
                        help="digit folders of photos (default: foreign-photos/cyril, modi)")
    parser.add_argument("--count", type=positive_int, default=200, help="photos to build")
    parser.add_argument("--seed", type=int, default=0, help="which photos and layouts")
    parser.add_argument("--resting", action="store_true",
                        help="add a hand turned fingers down to each photo, not to be read")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write the photos and expected.csv here")
    args = parser.parse_args()
    folders = args.folders or default_folders()
    photos = labelled_photos(folders)
    if len(photos) < max(HANDS):
        parser.error(f"{', '.join(map(str, folders))}: fewer than {max(HANDS)} photos in "
                     "folders named 0-9")
    if args.out is not None:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            parser.error(f"--out {args.out}: {exc.strerror or exc}")

    from signdigits.config.settings import get_settings
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.models import models_dir
    from signdigits.serving.photo import read_photo
    from signdigits.serving.reader import HandReader

    settings = get_settings()
    reader = HandReader.from_folder(Classifier(settings.model_path, threads=1),
                                    models_dir(settings.hand_models_dir),
                                    max_hands=settings.max_hands)
    threshold = reader.classifier.info.default_threshold
    rng = random.Random(args.seed)
    tally: Counter[str] = Counter()
    cpu: dict[int, float] = dict.fromkeys(HANDS, 0.0)
    expected_lines = ["file,digits"]
    for index in range(args.count):
        hands = rng.choice(HANDS)
        picks = rng.sample(photos, hands + args.resting)
        data, expected = composite(picks[:hands], rng,
                                   resting=picks[-1][0] if args.resting else None)
        if args.out is not None:
            name = f"{index:05d}-{expected}.jpg"
            (args.out / name).write_bytes(data)
            expected_lines.append(f"{name},{expected}")
        started = time.thread_time()
        reading = reader.read(read_photo(data))
        cpu[hands] += time.thread_time() - started
        tally[f"{hands}"] += 1
        tally[f"{hands} count"] += len(reading.hands) == hands
        tally[f"{hands} string"] += reading.digits == expected
        tally["hands read"] += len(reading.hands)
        tally["sure and wrong"] += reading.digits != expected and not reading.doubtful(threshold)
    if args.out is not None:
        (args.out / "expected.csv").write_text("\n".join(expected_lines) + "\n")
    resting = ", each with a hand resting, fingers down" if args.resting else ""
    print(f"{args.count} photos from {', '.join(map(str, folders))} (seed {args.seed}"
          f"{resting}), 1 thread")
    for hands in HANDS:
        n = tally[f"{hands}"]
        if n:
            print(f"{hands} hand{'s' if hands > 1 else ' '}: {n:4d} photos, string right "
                  f"{tally[f'{hands} string'] / n:6.1%}, hands counted right "
                  f"{tally[f'{hands} count'] / n:6.1%}, {1000 * cpu[hands] / n:5.1f} CPU-ms")
    several = [h for h in HANDS if h > 1 and tally[f"{h}"]]
    if several:
        n = sum(tally[f"{h}"] for h in several)
        print(f"several: {n:4d} photos, string right "
              f"{sum(tally[f'{h} string'] for h in several) / n:6.1%}, hands counted right "
              f"{sum(tally[f'{h} count'] for h in several) / n:6.1%}")
    print(f"wrong at or above the threshold ({threshold:.3f}): {tally['sure and wrong']}")
    seconds = sum(cpu.values())
    print(f"photos_per_cpu_s={args.count / seconds:.1f} "
          f"hands_per_cpu_s={tally['hands read'] / seconds:.1f}")


if __name__ == "__main__":
    main()
