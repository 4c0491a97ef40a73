"""Any image file -> the upright RGB photo the hand finder reads, decoded no larger than needed.

Training, evaluation, ``predict``, the workers and the web all read photos here, so the
model sees the same pixels wherever it runs. JPEGs (nearly every photo) are decoded at
the DCT scale that keeps the shorter side at least :data:`MIN_SIDE` pixels, which is most
of a big photo's decoding cost saved; other formats are decoded whole and then reduced.
Hand coordinates are measured on the decoded picture and reported on the photo's own
upright size (:attr:`Photo.scale`).
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from signdigits.config.settings import DEFAULT_MAX_IMAGE_PIXELS
from signdigits.files.reading import ImageError, file_error
from signdigits.serving.jpeg import ORIENTATION_TRANSPOSE, decode_rgb, is_jpeg

ImageSource = bytes | str | Path | BinaryIO
# The shorter side the hand finder needs: a 640 x 480 webcam frame is read at 320 x 240.
# A hand under about a fifteenth of the frame has too few pixels there for its 21
# landmarks: such a photo is decoded again, closer (serving.reader.look).
MIN_SIDE = 240
_FAST_PATH_MAX_BYTES = 64 * 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class Photo:
    image: Image.Image  # RGB, upright, at least MIN_SIDE on its shorter side when it was
    original_size: tuple[int, int]  # the photo's own width and height, upright

    @property
    def scale(self) -> float:
        """Decoded pixels per original pixel (1.0 when decoded whole)."""
        return self.image.width / self.original_size[0]


def read_photo(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               min_side: int = MIN_SIDE) -> Photo:
    """Decode ``source`` to its upright RGB picture, reduced to about ``min_side``.

    Honours EXIF orientation; accepts palette, alpha (composited onto white, like the
    dataset's light backgrounds), 16-bit, float, CMYK, LAB, HEIC and multi-frame images
    (first frame); refuses images over ``max_pixels`` before decoding any pixel data.
    Raises :class:`ImageError` with one line saying what is wrong with the file.
    """
    with decoding(source) as opened:
        return _decode(opened, max_pixels=max_pixels, min_side=min_side)


@contextmanager
def decoding(source: ImageSource) -> Iterator[bytes | BinaryIO]:
    """``source`` opened for decoding, every decoder's failure turned into one ImageError."""
    if isinstance(source, bytes) and not source:
        raise ImageError("empty file (0 bytes)")
    try:
        with ExitStack() as opened:
            if isinstance(source, (str, Path)):
                # Opened once: the JPEG check and Pillow read the same file.
                source = opened.enter_context(_open_regular_file(source))
            yield source
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


def _decode(source: bytes | BinaryIO, *, max_pixels: int, min_side: int) -> Photo:
    data = jpeg_bytes(source)
    if data is not None:
        fast = decode_rgb(data, max_pixels=max_pixels, min_side=min_side)
        if fast is not None:
            return Photo(*fast)
        source = data
    return decode_with_pillow(source, max_pixels=max_pixels, reduce_to=min_side,
                              finish=lambda img, size: Photo(to_rgb(_reduced(img, min_side)),
                                                             size))


def decode_with_pillow(source: bytes | BinaryIO, *, max_pixels: int, reduce_to: int,
                       finish: Callable[[Image.Image, tuple[int, int]], T],
                       mode: str = "RGB") -> T:
    """Pillow's path: the first picture, checked against ``max_pixels`` from its header,
    decoded at the smallest JPEG DCT scale or HEIC thumbnail keeping ``reduce_to`` pixels
    a side, upright; ``finish(image, its full upright size)`` makes the result."""
    with open_image(source) as img:
        width, height = img.size
        if width * height > max_pixels:
            raise ImageError(
                f"image is {width}x{height} = {width * height:,} pixels, over the "
                f"{max_pixels:,}-pixel limit (refused before decoding)"
            )
        if img.format == "JPEG" and img.mode in ("RGB", "L"):
            # DCT-domain downscaling: big photos decode at a fraction of the cost. Pillow
            # picks the scale jpeg.dct_scale picks for the fast path.
            img.draft(mode, (reduce_to, reduce_to))
        elif img.format == "HEIF":
            # A phone's HEIC holds a scaled copy (320 x 240 on an iPhone): decoded instead
            # of the 12 megapixels when it is no smaller than this.
            img.draft(None, (reduce_to, reduce_to))
        if img.format != "HEIF":  # HEIF opens on its primary picture, not always the first
            img.seek(0)
        img.load()
        turned = upright(img)
        full = (height, width) if turned.size != img.size else (width, height)
        return finish(turned, full)


def _reduced(img: Image.Image, min_side: int) -> Image.Image:
    """A whole-decoded picture cut down by a whole factor to about ``min_side`` a side
    (PNG, WebP, a JPEG Pillow took): the hand finder gains nothing from more pixels."""
    factor = min(img.size) // min_side
    return img.reduce(factor) if factor >= 2 and img.mode in ("RGB", "RGBA", "L", "LA") else img


def open_image(source: bytes | BinaryIO) -> Image.Image:
    """``Image.open`` of bytes or a file, with HEIC/HEIF (phones' photos) among the formats.

    Everything that decodes a photo (this module, the web's thumbnails) opens it here, so
    that a format one of them reads, the other reads too.
    """
    _register_heif()
    with warnings.catch_warnings():
        # Pillow warns past 89 megapixels; the callers refuse past their own limit in one
        # line, and its warning had been printed above that line, raw.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
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


def jpeg_bytes(source: bytes | BinaryIO) -> bytes | None:
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


def to_gray(img: Image.Image) -> Image.Image:
    """8-bit gray of any mode, scaled (not clipped) from 16-bit and float, transparency on
    white."""
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
    return _on_white(img).convert("L")


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB as the workers read it: transparency on white, 16-bit and float as gray (the
    web's thumbnails show what was read, not transparency gone black)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F", "LAB"):
        return to_gray(img).convert("RGB")  # no colour to keep: its gray, scaled as gray
    img = _on_white(img)
    return img if img.mode == "RGB" else img.convert("RGB")


def _on_white(img: Image.Image) -> Image.Image:
    """Transparent regions made white, like the dataset's light backgrounds."""
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba)
    return img
