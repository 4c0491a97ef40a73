"""Pictures for people, as bytes: a photo's thumbnail, the photo with the hands the reader
found drawn on it, and the 224 x 224 square its landmark model read. Also the decoded
photo ``POST /api/predict`` sends a worker.

The drawing and the crop are :mod:`serving.preview`'s, from a row's stored hand JSON
(in the photo's own pixels), so they show what the worker saw without loading a model.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from signdigits.files.reading import ImageError
from signdigits.serving.photo import Photo, open_image, read_photo, to_rgb, upright
from signdigits.serving.preview import draw_hands, hand_crop
from signdigits.serving.reader import closer_look, closer_step

THUMBNAIL_SIDE = 256
# The annotated photo: the longest side it is shown at, and the shortest it is drawn on (a
# 100 x 100 photo is enlarged first, or the 21 points would cover the hand).
ANNOTATED_SIDE = 640
ANNOTATED_MIN_SIDE = 400


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
            shown = to_rgb(upright(img))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot decode image: {exc}") from None
    shown.thumbnail((side, side), Image.Resampling.BILINEAR)
    return _jpeg(shown)


def stored_hands(image: Any) -> list[dict[str, Any]]:
    """The hands a results row stores (``images.hand``: ``{"hands": [...]}``, the answer
    first); none for a row not read yet, read before hands were stored, or with none."""
    stored = image.hand
    hands = stored.get("hands") if isinstance(stored, dict) else None
    return [h for h in hands if isinstance(h, dict)] if isinstance(hands, list) else []


def photo_message(photo: Photo) -> tuple[str, list[int], list[int]]:
    """What the predict task takes: the decoded RGB pixels in base64, their [width,
    height], and the photo's own upright [width, height] (hands come back in those)."""
    pixels = np.asarray(photo.image.convert("RGB"), dtype=np.uint8)
    return (base64.b64encode(pixels.tobytes()).decode("ascii"), list(photo.image.size),
            list(photo.original_size))


def annotated_jpeg(data: bytes, hands: list[dict[str, Any]], *, max_pixels: int,
                   side: int = ANNOTATED_SIDE) -> bytes:
    """The photo at most ``side`` pixels on its longest side (a small one enlarged to
    :data:`ANNOTATED_MIN_SIDE`), upright, with each hand's box, bones and points drawn:
    green if read at or above the threshold, orange below it. No hands: the photo alone."""
    photo = read_photo(data, max_pixels=max_pixels, min_side=min(side, ANNOTATED_MIN_SIDE))
    shown = photo.image
    longest = max(shown.size)
    target = side if longest > side else max(longest, min(side, ANNOTATED_MIN_SIDE))
    if target != longest:
        factor = target / longest
        shown = shown.resize((max(1, round(shown.width * factor)),
                              max(1, round(shown.height * factor))),
                             Image.Resampling.BILINEAR)
    try:
        drawn = draw_hands(shown, hands, scale=shown.width / photo.original_size[0])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ImageError(f"its stored hands cannot be drawn ({exc.__class__.__name__})") from None
    return _jpeg(drawn)


def hand_png(data: bytes, hands: list[dict[str, Any]], *, max_pixels: int) -> bytes:
    """The 224 x 224 square the landmark model read for the first of a row's stored
    ``hands``, cut again from the photo decoded as the worker decoded it: closer when its
    hands are small (serving.reader.look_again; only the hands read were stored, so a hand
    set aside does not count)."""
    photo = read_photo(data, max_pixels=max_pixels)
    boxes = [hand.get("box") if isinstance(hand, dict) else None for hand in hands]
    numbers = all(isinstance(box, list) and len(box) == 4 and all(
        isinstance(v, (int, float)) for v in box) for box in boxes)
    if boxes and numbers and closer_step(boxes, scale=photo.scale) is not None:
        photo = closer_look(data, photo, max_pixels=max_pixels) or photo
    try:
        crop = hand_crop(photo.image, hands[0], scale=photo.scale)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ImageError(f"its stored hand cannot be cut out ({exc.__class__.__name__})") from None
    out = io.BytesIO()
    crop.save(out, "PNG")
    return out.getvalue()


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=82)
    return out.getvalue()
