"""The CNN's view of a photo: 64 x 64 grayscale float32 in [0, 1].

Decoding itself (formats, orientation, size caps, the JPEG fast path) is
:mod:`serving.photo`'s, shared with the hand finder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from signdigits.config.settings import DEFAULT_MAX_IMAGE_PIXELS
from signdigits.files.reading import ImageError
from signdigits.serving.jpeg import decode_gray
from signdigits.serving.model_input import IMAGE_SIZE
from signdigits.serving.photo import (
    ImageSource,
    decode_with_pillow,
    decoding,
    jpeg_bytes,
    open_image,
    to_gray,
    upright,
)

__all__ = ["IMAGE_SIZE", "ImageError", "ImageSource", "open_image", "preprocess_image",
           "to_preview_png", "upright"]
# JPEGs are decoded at the DCT scale that leaves at least this many pixels a side.
_DRAFT_SIZE = IMAGE_SIZE * 2


def preprocess_image(
    source: ImageSource, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> np.ndarray:
    """Decode ``source`` and return the model's view of it: (64, 64) float32 in [0, 1]."""
    with decoding(source) as opened:
        data = jpeg_bytes(opened)
        if data is not None:
            fast = decode_gray(data, max_pixels=max_pixels, draft_size=_DRAFT_SIZE)
            if fast is not None:
                return _square_resize(fast)
            opened = data
        return decode_with_pillow(opened, max_pixels=max_pixels, reduce_to=_DRAFT_SIZE,
                                  mode="L", finish=lambda img, _: _square_resize(to_gray(img)))


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
