"""The one preprocessing function: any image file -> 64 x 64 grayscale float32 in [0, 1].

Training, evaluation, ``predict`` and the workers all call :func:`preprocess_image`.
Removing or duplicating it means the model sees different pixels in production than it
was trained on, which is how the project we started from lost accuracy silently.
"""

from __future__ import annotations

import io
import os
import stat
from contextlib import ExitStack
from functools import cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from signdigits.config.settings import DEFAULT_MAX_IMAGE_PIXELS
from signdigits.files.reading import ImageError, file_error
from signdigits.serving.jpeg import ORIENTATION_TRANSPOSE, decode_gray, is_jpeg
from signdigits.serving.model_input import IMAGE_SIZE

ImageSource = bytes | str | Path | BinaryIO
# JPEGs are decoded at the DCT scale that leaves at least this many pixels a side.
_DRAFT_SIZE = IMAGE_SIZE * 2
_FAST_PATH_MAX_BYTES = 64 * 1024 * 1024


def preprocess_image(
    source: ImageSource, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> np.ndarray:
    """Decode ``source`` and return the model's view of it: (64, 64) float32 in [0, 1].

    Honours EXIF orientation; accepts palette, alpha, 16-bit, CMYK and multi-frame images
    (first frame); refuses images over ``max_pixels`` before decoding any pixel data.
    """
    if isinstance(source, bytes) and not source:
        raise ImageError("empty file (0 bytes)")
    try:
        with ExitStack() as opened:
            if isinstance(source, (str, Path)):
                # Opened once: the JPEG check and Pillow read the same file.
                source = opened.enter_context(_open_regular_file(source))
            return _decode(source, max_pixels=max_pixels)
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
        raise file_error(exc) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"cannot decode image: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - one odd file must not fail its whole batch
        raise ImageError(f"cannot decode image: {exc.__class__.__name__}: {exc}") from None


def _open_regular_file(path: str | Path) -> BinaryIO:
    """Without blocking: a FIFO named .jpg in a training folder hung train, cv, evaluate
    and convert forever at a plain open()."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ImageError("not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _decode(source: bytes | BinaryIO, *, max_pixels: int) -> np.ndarray:
    data = _jpeg_bytes(source)
    if data is not None:
        fast = decode_gray(data, max_pixels=max_pixels, draft_size=_DRAFT_SIZE)
        if fast is not None:
            return _square_resize(fast)
        source = data
    with open_image(source) as img:
        width, height = img.size
        if width * height > max_pixels:
            raise ImageError(
                f"image is {width}x{height} = {width * height:,} pixels, over the "
                f"{max_pixels:,}-pixel limit (refused before decoding)"
            )
        if img.format == "JPEG" and img.mode in ("RGB", "L"):
            # DCT-domain downscaling: big photos decode at a fraction of the cost.
            img.draft("L", (_DRAFT_SIZE, _DRAFT_SIZE))
        elif img.format == "HEIF":
            # A phone's HEIC holds a scaled copy (320 x 240 on an iPhone): decoded instead
            # of the 12 megapixels when it is no smaller than this.
            img.draft(None, (_DRAFT_SIZE, _DRAFT_SIZE))
        if img.format != "HEIF":  # HEIF opens on its primary picture, not always the first
            img.seek(0)
        img.load()
        return _square_resize(_to_grayscale(upright(img)))


def open_image(source: bytes | BinaryIO) -> Image.Image:
    """``Image.open`` of bytes or a file, with HEIC/HEIF (phones' photos) among the formats.

    Everything that decodes a photo (this module, the web's thumbnails) opens it here, so
    that a format one of them reads, the other reads too.
    """
    _register_heif()
    return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)


@cache
def _register_heif() -> None:
    # On first use, not at import: pillow-heif loads libheif (~0.1 s), which a process
    # that never opens a non-JPEG (the producer, most workers' batches) does not need.
    # libheif applies the file's rotation itself and pillow-heif then resets the EXIF
    # orientation to 1, so :func:`upright` does not turn the picture twice.
    from pillow_heif import register_heif_opener

    register_heif_opener()


def upright(img: Image.Image) -> Image.Image:
    """The EXIF orientation applied, as ``ImageOps.exif_transpose`` applies it.

    Not that function itself: after turning the pixels it writes the EXIF block back
    without the orientation, and raised ``struct.error`` on a tag it could not write
    (an image width stored as a fraction), for a file whose pixels were fine.
    """
    method = ORIENTATION_TRANSPOSE.get(img.getexif().get(ExifTags.Base.Orientation, 1))
    return img.transpose(method) if method is not None else img


def _jpeg_bytes(source: bytes | BinaryIO) -> bytes | None:
    """The file's bytes if it is a JPEG (the fast path's input), else None.

    A file is read from where it stands and left there for Pillow when it is not a JPEG,
    or a JPEG over ``_FAST_PATH_MAX_BYTES`` (Pillow reads only what it decodes).
    """
    if isinstance(source, bytes):
        return source if is_jpeg(source) else None
    if not source.seekable():
        return None
    start = source.tell()
    if is_jpeg(source.read(3)):
        source.seek(start)
        data = source.read(_FAST_PATH_MAX_BYTES + 1)
        if len(data) <= _FAST_PATH_MAX_BYTES:
            return data
    source.seek(start)
    return None


def _to_grayscale(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # convert("L") clips 16-bit values at 255 instead of scaling them.
        values = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0)
        brightest = values.max(initial=0)
        # Floats in [0, 1] are the usual float image; they came out black when the 255
        # rule below overrode this one.
        if mode == "F" and brightest <= 1.0:
            top = 1.0
        elif mode in ("I", "F") and brightest <= 255:
            top = 255.0
        else:
            top = 65535.0
        scaled = np.clip(values / top * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(scaled)
    if mode == "LAB":  # Pillow converts LAB to nothing else; its L band is the lightness
        return img.getchannel("L")
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


def to_preview_png(pixels: np.ndarray, path: Path) -> None:
    """Write the 64 x 64 image the model saw, for a person to look at."""
    Image.fromarray((np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)).save(path)
