"""The one preprocessing function: any image file -> 64 x 64 grayscale float32 in [0, 1].

Training, evaluation, ``predict`` and the workers all call :func:`preprocess_image`.
Removing or duplicating it means the model sees different pixels in production than it
was trained on, which is how the project we started from lost accuracy silently.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from signdigits.paths import is_inside, resolve_inside

IMAGE_SIZE = 64
# Bump when the pixels this module produces change; artifacts record the version they
# were trained with and are refused by code that preprocesses differently.
PREPROCESS_VERSION = 2
DEFAULT_MAX_PIXELS = 40_000_000

ImageSource = bytes | str | Path | BinaryIO


class ImageError(ValueError):
    """A file that cannot become model input; the message is shown to the user as is."""


def preprocess_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``source`` and return the model's view of it: (64, 64) float32 in [0, 1].

    Honours EXIF orientation; accepts palette, alpha, 16-bit, CMYK and multi-frame images
    (first frame); refuses images over ``max_pixels`` before decoding any pixel data.
    """
    if isinstance(source, bytes):
        if not source:
            raise ImageError("empty file (0 bytes)")
        source = io.BytesIO(source)
    try:
        with Image.open(source) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(
                    f"image is {width}x{height} = {width * height:,} pixels, over the "
                    f"{max_pixels:,}-pixel limit (refused before decoding)"
                )
            if img.format == "JPEG" and img.mode in ("RGB", "L"):
                # DCT-domain downscaling: big photos decode at a fraction of the cost.
                img.draft("L", (IMAGE_SIZE * 2, IMAGE_SIZE * 2))
            img.seek(0)
            img.load()
            gray = _to_grayscale(ImageOps.exif_transpose(img))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's header check, before ours
        size = str(exc).split(" pixels")[0].split("(")[-1]
        raise ImageError(
            f"image is {size} pixels, over the pixel limit (refused before decoding)"
        ) from None
    except UnidentifiedImageError:
        raise ImageError("not an image (format not recognised)") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        raise _file_error(exc) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"cannot decode image: {exc}") from None
    return _square_resize(gray)


def _to_grayscale(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # convert("L") clips 16-bit values at 255 instead of scaling them.
        values = np.asarray(img, dtype=np.float64)
        top = 1.0 if mode == "F" and values.max(initial=0) <= 1.0 else 65535.0
        if mode in ("I", "F") and values.max(initial=0) <= 255:
            top = 255.0
        scaled = np.clip(values / top * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(scaled)
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent regions become white, like the dataset's light backgrounds.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("L") if img.mode != "L" else img


def _square_resize(gray: Image.Image) -> np.ndarray:
    width, height = gray.size
    if width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        gray = gray.crop((left, top, left + side, top + side))
    if gray.size != (IMAGE_SIZE, IMAGE_SIZE):
        gray = gray.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(gray, dtype=np.float32) / np.float32(255.0)


def _file_error(exc: OSError) -> ImageError:
    if isinstance(exc, FileNotFoundError):
        return ImageError("file not found")
    if isinstance(exc, PermissionError):
        return ImageError("permission denied")
    if isinstance(exc, IsADirectoryError):
        return ImageError("is a directory, not a file")
    return ImageError(f"cannot read file: {exc.strerror or exc}")


def read_job_file(root: Path, relative: str, *, max_bytes: int,
                  allowed_roots: list[Path]) -> bytes:
    """The bytes of a job's image by its manifest path, refused if it leads outside the
    job's folder or outside every one of ``allowed_roots`` (when any are given)."""
    path = resolve_inside(root, relative, allowed_roots)
    if path is None:
        raise ImageError(
            "path leads outside the job's folder or SIGNDIGITS_ALLOWED_ROOTS (refused)"
        )
    return read_image_file(path, max_bytes=max_bytes, within=root)


def read_image_file(path: Path, *, max_bytes: int, within: Path | None = None) -> bytes:
    """Read a regular file for :func:`preprocess_image`, refusing it past ``max_bytes``.

    Opened without following a final symlink and without blocking (a FIFO named .jpg
    would otherwise hang the reader forever); with ``within`` set, the file actually
    opened must lie inside that folder, which closes the gap between resolving a path
    and opening it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageError("is a symlink (refused)") from None
        raise _file_error(exc) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageError("not a regular file")
        if within is not None:
            opened = os.readlink(f"/proc/self/fd/{fd}") if os.path.isdir("/proc/self/fd") else ""
            if opened and not is_inside(opened, os.path.realpath(within)):
                raise ImageError("path leads outside the job's folder (refused)")
        if info.st_size > max_bytes:
            raise ImageError(f"file is {info.st_size:,} bytes, over the {max_bytes:,}-byte cap")
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise _file_error(exc) from None
    if len(data) > max_bytes:
        raise ImageError(f"file grew past the {max_bytes:,}-byte cap while being read")
    if not data:
        raise ImageError("empty file (0 bytes)")
    return data


def to_preview_png(pixels: np.ndarray, path: Path) -> None:
    """Write the 64 x 64 image the model saw, for a person to look at."""
    Image.fromarray((np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)).save(path)
