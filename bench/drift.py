"""A foreign population as a worse camera would see it: a degraded copy of real photos.

    .venv/bin/python -m signdigits.bench.drift SOURCE OUT --kind KIND [--strength 1]
        [--seed 0] [--no-score]

SOURCE holds ``<digit>/<name>`` photos (the foreign photos ``modi`` or ``cyril``, a copy of
the dataset's test split);
OUT (new or empty) gets the same tree, each photo degraded as KIND says:

- ``dark``: a dim room; the sensor's gain brings it back up with its noise (shot and
  read noise, in colour) and the dark end's lost levels.
- ``blur``: a hand or camera moving during the exposure: motion blur of a random
  direction, its length a share of the photo's width.
- ``lowres``: a cheap webcam: the picture taken at a fraction of the size, upscaled again.
- ``jpeg``: heavy JPEG compression (blocks, colour smear).
- ``small``: the hand far from the camera: the photo shrunk onto a large frame of
  smooth colour.
- ``stretch``: a camera app that stores a 3:4 portrait picture as 4:3 landscape: 16/9
  as wide (the hand's shape itself changes, which the classifier reads).
- ``webcam``: a cheap webcam doing that: a small sensor, stretched, dim light with its
  noise, compression.
- ``black``: the hand cut out onto black, under one of many lights (brightness, contrast,
  colour): the kind of set people make by segmenting their hands. It cuts by warmth (red
  over blue, Otsu's threshold), so it needs a light, neutral background: ``cyril``, the
  dataset's studio photos; not ``modi``'s room.

``--strength`` scales every parameter (1 = the figures in docs/reviewing.md). Each photo's
random draws come from the seed and its relative path alone, so a rerun writes the same
bytes. Unless ``--no-score``, the shipped model (SIGNDIGITS_MODEL_PATH if set) then reads
every copy as a worker does (``HandReader.look``: decoded, the hands, the classifier) and one line
says: right, no hand found, at or above the model's default threshold, right among those.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from signdigits.files.paths import is_image_name

Degrade = Callable[[Image.Image, np.random.Generator, float], Image.Image]


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=max(2, min(95, quality)))
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def dark(image: Image.Image, rng: np.random.Generator, s: float) -> Image.Image:
    light = np.asarray(image, np.float32) / 255.0
    photons = 40.0 / s  # electrons at full scale: fewer is darker, and noisier
    seen = rng.poisson(light ** 2.2 * photons) + rng.normal(0, 1.5 * s, light.shape)
    gained = np.clip(np.round(seen) / photons, 0, 1) ** (1 / 2.2)  # gain, then gamma
    return Image.fromarray((gained * 255).astype(np.uint8))


def blur(image: Image.Image, rng: np.random.Generator, s: float) -> Image.Image:
    length = max(2, round(image.width * 0.04 * s * rng.uniform(0.7, 1.3)))
    angle = rng.uniform(0, np.pi)
    pixels = np.asarray(image, np.float32)
    total = np.zeros_like(pixels)
    for t in np.linspace(-0.5, 0.5, length):
        dx, dy = round(t * length * np.cos(angle)), round(t * length * np.sin(angle))
        total += np.roll(pixels, (dy, dx), axis=(0, 1))
    return Image.fromarray((total / length).astype(np.uint8))


def lowres(image: Image.Image, rng: np.random.Generator, s: float) -> Image.Image:
    side = max(16, round(image.width / (6 * s)))
    small = image.resize((side, round(side * image.height / image.width)),
                         Image.Resampling.BOX)
    return small.resize(image.size, Image.Resampling.BILINEAR)


def jpeg(image: Image.Image, rng: np.random.Generator, s: float) -> Image.Image:
    return _jpeg(image, round(8 / s))


def small(image: Image.Image, rng: np.random.Generator, s: float) -> Image.Image:
    colours = rng.integers(0, 256, (12, 16, 3), np.uint8)
    frame = Image.fromarray(colours).resize((image.width * 3, image.height * 3),
                                            Image.Resampling.BICUBIC)
    frame = frame.filter(ImageFilter.GaussianBlur(8))
    width = max(16, round(image.width * 0.5 / s))
    height = round(image.height * width / image.width)
    frame.paste(image.resize((width, height), Image.Resampling.LANCZOS),
                (int(rng.integers(0, frame.width - width)),
                 int(rng.integers(0, frame.height - height))))
    return frame


def stretch(image: Image.Image, rng: np.random.Generator, s: float) -> Image.Image:
    wide = 1 + (16 / 9 - 1) * s  # a 3:4 portrait picture stored as 4:3: 16/9 as wide
    return image.resize((round(image.width * wide), image.height),
                        Image.Resampling.BICUBIC)


def webcam(image: Image.Image, rng: np.random.Generator, s: float) -> Image.Image:
    image = stretch(lowres(image, rng, 0.6 * s), rng, s)
    image = dark(image, rng, 0.5 * s)
    return _jpeg(image, round(20 / s))


def black(image: Image.Image, rng: np.random.Generator, s: float) -> Image.Image:
    pixels = np.asarray(image, np.float32)
    warmth = pixels[..., 0] - pixels[..., 2]  # skin is redder than blue; grey walls are not
    hand = Image.fromarray(((warmth > max(_otsu(warmth), 12.0)) * 255).astype(np.uint8))
    # Opened and closed: specks of warm wall out, pinholes in the hand filled.
    hand = hand.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(5))
    hand = hand.filter(ImageFilter.MinFilter(3))
    kept = pixels * (np.asarray(hand, np.float32)[..., None] / 255.0)
    gain = np.exp(rng.uniform(-0.8, 0.35) * s)  # 0.45-1.4 at strength 1
    gamma = np.exp(rng.uniform(-0.35, 0.4) * s)
    tint = np.exp(rng.uniform(-0.2, 0.2, 3) * s)  # warm or cold light
    lit = np.clip((kept / 255.0) ** gamma * gain * tint, 0, 1)
    return Image.fromarray((lit * 255).astype(np.uint8))


def _otsu(values: np.ndarray) -> float:
    """The threshold that best splits ``values`` in two (Otsu's between-class variance)."""
    counts, edges = np.histogram(values, 256)
    share = np.cumsum(counts) / counts.sum()
    mean = np.cumsum(counts * edges[:-1]) / counts.sum()
    between = (mean[-1] * share - mean) ** 2 / np.maximum(share * (1 - share), 1e-12)
    return float(edges[int(np.argmax(between))])


KINDS: dict[str, Degrade] = {f.__name__: f for f in (dark, blur, lowres, jpeg, small, stretch,
                                                      webcam, black)}


def degrade_folder(source: Path, out: Path, kind: str, *, strength: float = 1.0,
                   seed: int = 0) -> dict[str, int]:
    """Write the degraded copies; relative path -> its folder's digit."""
    truth = {}
    for digit in range(10):
        folder = source / str(digit)
        names = sorted(p for p in folder.iterdir() if is_image_name(p.name)) \
            if folder.is_dir() else []
        for path in names:
            relative = f"{digit}/{path.name}"
            key = hashlib.sha256(f"{seed}:{kind}:{relative}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(key[:8], "big"))
            with Image.open(path) as opened:
                copy = KINDS[kind](opened.convert("RGB"), rng, strength)
            (out / str(digit)).mkdir(parents=True, exist_ok=True)
            copy.save(out / relative, quality=90)  # the format its name says
            truth[relative] = digit
    return truth


def score(folder: Path, truth: dict[str, int]) -> str:
    """The shipped model on every photo, as a worker reads it: one line."""
    from signdigits.config.settings import get_settings
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.models import models_dir
    from signdigits.serving.reader import HandReader

    settings = get_settings()
    reader = HandReader.from_folder(Classifier(settings.model_path),
                                    models_dir(settings.hand_models_dir))
    threshold = reader.classifier.info.default_threshold
    right = no_hand = above = right_above = 0
    for relative, digit in truth.items():
        reading = reader.look(folder / relative)[1]
        ok = reading.digits == str(digit)
        sure = not reading.doubtful(threshold)
        right += ok
        no_hand += not reading.hands
        above += sure
        right_above += ok and sure
    n = len(truth)
    return (f"{folder}: right {right}/{n} ({right / n:.1%}), no hand found {no_hand}, "
            f"at or above the threshold {threshold:.2f}: {above} ({above / n:.1%}), right "
            f"among those {right_above}/{above}, wrong above it {above - right_above}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m signdigits.bench.drift",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="<digit>/<name> photos")
    parser.add_argument("out", type=Path, help="a new (or empty) folder for the copies")
    parser.add_argument("--kind", choices=sorted(KINDS), required=True)
    parser.add_argument("--strength", type=float, default=1.0, help="scales the parameters")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-score", action="store_true", help="write the copies only")
    args = parser.parse_args(argv)
    if not (args.source / "0").is_dir():
        parser.error(f"{args.source}: no digit folders 0-9")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty (choose a new folder)")
    if args.strength <= 0:
        parser.error("--strength must be above 0")
    truth = degrade_folder(args.source, args.out, args.kind, strength=args.strength,
                           seed=args.seed)
    print(f"wrote {len(truth)} {args.kind} copies (strength {args.strength}, seed "
          f"{args.seed}) of {args.source} in {args.out}")
    if not args.no_score:
        print(score(args.out, truth))


if __name__ == "__main__":
    main()
