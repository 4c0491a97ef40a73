"""Pictures for people: a photo's thumbnail and the 64 x 64 view the model saw, as bytes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from signdigits.files.reading import ImageError
from signdigits.serving.preprocess import open_image, preprocess_image, upright

THUMBNAIL_SIDE = 256


def thumbnail_jpeg(data: bytes, *, max_pixels: int, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small JPEG of the photo, upright by its EXIF orientation; refuses huge images
    from the header, as the workers do."""
    try:
        with open_image(data) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(f"image is {width}x{height}, over the pixel limit")
            if img.format in ("JPEG", "HEIF"):
                img.draft("RGB", (side * 2, side * 2))  # decode at a fraction of the size
            if img.format != "HEIF":  # HEIF opens on its primary picture
                img.seek(0)
            img.load()
            # The workers' own turn: ImageOps.exif_transpose rewrites the EXIF block
            # and fails on tags it cannot write back, for pixels that are fine.
            shown = upright(img).convert("RGB")
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot decode image: {exc}") from None
    shown.thumbnail((side, side), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    shown.save(out, "JPEG", quality=82)
    return out.getvalue()


def model_view(data: bytes, *, max_pixels: int) -> np.ndarray:
    """The (64, 64) float32 pixels the model gets: the one preprocessing function's."""
    return preprocess_image(data, max_pixels=max_pixels)


def as_uint8(pixels: np.ndarray) -> np.ndarray:
    # preprocess_image divides 8-bit gray by 255, so this is exact, not a new rounding.
    return (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)


def preview_png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(as_uint8(pixels)).save(out, "PNG")
    return out.getvalue()
