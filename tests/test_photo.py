"""The hand finder's photo: upright RGB, decoded small, the same pixels by either decoder.

The JPEG fast path (libjpeg-turbo through simplejpeg) and Pillow's path must give equal
pixels, or a model would be served pictures unlike those it was trained on; each case
also says the fast path was the one taken, so a fast path that always fell back fails.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from signdigits.files.reading import ImageError
from signdigits.serving import photo
from signdigits.serving.photo import MIN_SIDE, read_photo


def _picture(width: int, height: int) -> Image.Image:
    """An asymmetric RGB picture with edges and a gradient (chroma and detail to decode)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
                    ((x + 2 * y) % 97) * 2], axis=-1).astype(np.uint8)
    rgb[(x - width * 0.3) ** 2 + (y - height * 0.25) ** 2 < (min(width, height) * 0.15) ** 2] = 30
    return Image.fromarray(rgb, "RGB")


def _encoded(img: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _served_and_pillows(data: bytes, monkeypatch) -> tuple[photo.Photo, photo.Photo, bool]:
    taken = []
    real = photo.decode_rgb

    def recording(*args, **kwargs):
        found = real(*args, **kwargs)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(photo, "decode_rgb", recording)
    served = read_photo(data)
    monkeypatch.setattr(photo, "decode_rgb", lambda *args, **kwargs: None)
    pillows = read_photo(data)
    monkeypatch.undo()
    return served, pillows, taken == [True]


@pytest.mark.parametrize("size", [(100, 100), (640, 480), (481, 961), (1000, 750),
                                  (3024, 4032)])
@pytest.mark.parametrize("options", [{"quality": 90}, {"quality": 95, "subsampling": 0},
                                     {"quality": 85, "progressive": True}])
def test_jpegs_decode_to_pillows_pixels_at_the_smallest_scale(size, options, monkeypatch):
    served, pillows, fast = _served_and_pillows(_encoded(_picture(*size), **options),
                                                monkeypatch)
    assert fast
    assert served.image.mode == "RGB" and served.original_size == size
    assert np.array_equal(np.asarray(served.image), np.asarray(pillows.image))
    assert served.original_size == pillows.original_size
    # The smallest of 1, 1/2, 1/4, 1/8 that keeps MIN_SIDE (or the whole of a small photo).
    scale = next(s for s in (8, 4, 2, 1) if min(size) // s >= MIN_SIDE or s == 1)
    assert served.image.size == (-(-size[0] // scale), -(-size[1] // scale))
    assert served.scale == pytest.approx(served.image.width / size[0])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_orientation_is_applied_by_both_decoders(orientation, monkeypatch):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encoded(_picture(640, 480), quality=92, exif=exif)
    served, pillows, fast = _served_and_pillows(data, monkeypatch)
    assert fast and np.array_equal(np.asarray(served.image), np.asarray(pillows.image))
    turned = orientation >= 5
    assert served.original_size == ((480, 640) if turned else (640, 480))
    assert served.image.size == ((240, 320) if turned else (320, 240))


def test_other_formats_are_reduced_to_about_the_same_size():
    png = read_photo(_encoded(_picture(1280, 960), "PNG"))
    assert png.original_size == (1280, 960) and png.image.size == (320, 240)
    assert png.scale == pytest.approx(0.25)


def test_transparency_becomes_white_and_sixteen_bit_is_scaled():
    rgba = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    assert read_photo(_encoded(rgba, "PNG")).image.getpixel((5, 5)) == (255, 255, 255)
    wide = Image.fromarray(np.full((300, 300), 65535, np.uint16))
    assert read_photo(_encoded(wide, "PNG")).image.getpixel((5, 5)) == (255, 255, 255)


@pytest.mark.parametrize("data, message", [(b"", "empty file"),
                                           (b"not an image at all", "not an image")])
def test_unreadable_input_is_one_clear_error(data, message):
    with pytest.raises(ImageError, match=message):
        read_photo(data)


def test_a_bomb_is_refused_before_decoding():
    with pytest.raises(ImageError, match="over the 1,000-pixel limit|over the pixel limit"):
        read_photo(_encoded(_picture(100, 100), "PNG"), max_pixels=1_000)
