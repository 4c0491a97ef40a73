"""read_photo, the one way every photo is read, on every odd image a user may have.

Formats, modes, orientation, the size caps and the errors: each gives the upright RGB
picture the hand finder reads, or one line saying what is wrong with the file.
"""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from signdigits.files.reading import ImageError
from signdigits.serving.photo import MIN_SIDE, read_photo


def gray_of(source, **options) -> np.ndarray:
    """The photo as read, in gray levels 0-1: what every format must agree on (some
    formats carry no colour)."""
    return np.asarray(read_photo(source, **options).image.convert("L"), np.float32) / 255


def _hand_like(size: int = 100) -> Image.Image:
    """An asymmetric RGB picture: a dark blob in the upper left on a light background."""
    y, x = np.mgrid[0:size, 0:size]
    base = np.full((size, size, 3), 220, np.uint8)
    blob = (x - size * 0.3) ** 2 + (y - size * 0.25) ** 2 < (size * 0.18) ** 2
    base[blob] = (120, 80, 60)
    base[: size // 10, :, 2] = 30
    return Image.fromarray(base, "RGB")


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _heic(*pictures: Image.Image, primary: int = 0, **kwargs) -> bytes:
    """A HEIC file as a phone writes one, by pillow-heif's own API: nothing here registers
    it with Pillow, so only serving.photo's registration can make it readable."""
    import pillow_heif

    heif = pillow_heif.from_pillow(pictures[0])
    for picture in pictures[1:]:
        heif.add_from_pillow(picture)
    buffer = io.BytesIO()
    heif.save(buffer, quality=95, primary_index=primary, **kwargs)
    return buffer.getvalue()


@pytest.fixture
def reference() -> np.ndarray:
    return gray_of(_encode(_hand_like(), "PNG"))


def test_a_photo_is_upright_rgb_at_its_own_size_when_small():
    read = read_photo(_encode(_hand_like(), "PNG"))
    assert read.image.mode == "RGB" and read.image.size == (100, 100)
    assert read.original_size == (100, 100) and read.scale == 1.0


@pytest.mark.parametrize(
    "mode_case",
    ["RGBA", "LA", "P", "P-transparent", "L", "CMYK-JPEG", "I;16", "BMP", "WEBP", "TIFF",
     "HEIC", "AVIF", "F-TIFF", "LAB-TIFF"],
)
def test_odd_modes_give_the_same_picture(mode_case, reference):
    img = _hand_like()
    if mode_case == "RGBA":
        data = _encode(img.convert("RGBA"), "PNG")
    elif mode_case == "LA":
        data = _encode(img.convert("LA"), "PNG")
    elif mode_case == "P":
        data = _encode(img.convert("P", palette=Image.Palette.ADAPTIVE), "PNG")
    elif mode_case == "P-transparent":
        data = _encode(img.convert("P", palette=Image.Palette.ADAPTIVE), "PNG", transparency=255)
    elif mode_case == "L":
        data = _encode(img.convert("L"), "PNG")
    elif mode_case == "CMYK-JPEG":
        data = _encode(img.convert("CMYK"), "JPEG", quality=95)
    elif mode_case == "I;16":
        gray = np.asarray(img.convert("L"), np.uint16) * 257  # full 16-bit range
        data = _encode(Image.fromarray(gray), "PNG")
    elif mode_case == "HEIC":  # an iPhone's default
        data = _heic(img)
    elif mode_case == "F-TIFF":  # floats in [0, 1]: they came out black
        floats = np.asarray(img.convert("L"), np.float32) / 255.0
        data = _encode(Image.fromarray(floats, "F"), "TIFF")
    elif mode_case == "LAB-TIFF":  # "conversion from LAB to RGB not supported"
        data = _encode(img.convert("LAB"), "TIFF")
    elif mode_case == "AVIF":
        data = _encode(img, "AVIF", quality=95)
    else:
        data = _encode(img, mode_case)
    read = read_photo(data)
    assert read.image.mode == "RGB" and read.image.size == (100, 100), mode_case
    assert np.abs(gray_of(data) - reference).mean() < 0.03, mode_case


def test_sixteen_bit_is_scaled_not_clipped():
    gray = np.full((80, 80), 32768, np.uint16)  # mid-grey in 16 bits
    out = gray_of(_encode(Image.fromarray(gray), "PNG"))
    assert abs(float(out.mean()) - 0.5) < 0.01


def test_alpha_composited_onto_white():
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # fully transparent black
    assert gray_of(_encode(rgba, "PNG")).min() > 0.99


def test_animated_gif_uses_first_frame(reference):
    first = _hand_like().convert("P")
    second = Image.new("P", (100, 100), 0)
    data = _encode(first, "GIF", save_all=True, append_images=[second], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    # Averaged over 4 x 4 squares: the web palette's dithering is noise at full size.
    def coarse(a: np.ndarray) -> np.ndarray:
        return a.reshape(25, 4, 25, 4).mean(axis=(1, 3))

    assert np.abs(coarse(gray_of(data)) - coarse(reference)).mean() < 0.03


def test_exif_orientation_is_honoured(reference):
    # Orientation 6 means "rotate 90 degrees clockwise to display": store the picture
    # rotated the other way, as a phone camera would.
    stored = _hand_like().transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(stored, "JPEG", quality=95, exif=exif)
    read = read_photo(data)
    assert read.original_size == (100, 100)
    assert np.abs(gray_of(data) - reference).mean() < 0.03
    naive = np.asarray(stored.convert("L"), np.float32) / 255
    assert np.abs(naive - reference).mean() > 0.05  # the test can tell the difference


def test_heic_is_read_on_its_primary_picture(reference):
    """A HEIC may hold several pictures (a burst, a depth map); the one shown is the
    primary, which need not be the first."""
    blank = Image.new("RGB", (100, 100), (255, 255, 255))
    assert np.abs(gray_of(_heic(blank, _hand_like(), primary=1)) - reference).mean() < 0.03


def test_heic_rotation_is_applied_once(reference):
    """Phones store HEIC pictures turned, with the turn both in the container (irot)
    and in the EXIF orientation: applying both would turn the picture twice."""
    stored = _hand_like().transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    upright = gray_of(_heic(stored, exif=exif.tobytes()))
    assert np.abs(upright - reference).mean() < 0.03
    naive = np.asarray(stored.convert("L"), np.float32) / 255
    assert np.abs(naive - reference).mean() > 0.05  # the test can tell the difference


def test_a_heic_thumbnail_for_the_web():
    from signdigits.web.imaging import thumbnail_jpeg

    thumbnail = Image.open(io.BytesIO(thumbnail_jpeg(_heic(_hand_like(300)), max_pixels=10**8)))
    assert thumbnail.format == "JPEG" and thumbnail.size == (256, 256)


def test_a_thumbnail_shows_transparency_white_as_the_workers_read_it():
    """It had gone black in the grid while /try and the annotated photo showed white."""
    from signdigits.web.imaging import thumbnail_jpeg

    clear = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    clear.paste((200, 60, 40, 255), (100, 50, 200, 150))  # an opaque patch in the middle
    out = io.BytesIO()
    clear.save(out, "PNG")
    shown = np.asarray(Image.open(io.BytesIO(thumbnail_jpeg(out.getvalue(), max_pixels=10**8))))
    assert shown[:10, :10].min() > 240  # the transparent corner: white
    assert np.asarray(read_photo(out.getvalue()).image)[:10, :10].min() > 240  # as read


@pytest.mark.parametrize(("fmt", "size", "decoded"), [
    ("JPEG", (4032, 3024), (504, 378)),  # a phone photo: the DCT's 1/8, still >= 240 a side
    ("JPEG", (640, 480), (320, 240)),  # a webcam frame: 1/2
    ("JPEG", (479, 700), (479, 700)),  # under 480 a side: whole
    ("PNG", (2000, 1000), (500, 250)),  # other formats: decoded whole, then cut by 4
    ("WEBP", (300, 900), (300, 900)),  # under 480 a side: whole
])
def test_big_photos_are_read_reduced_to_about_240_a_side(fmt, size, decoded):
    read = read_photo(_encode(_hand_like(max(size)).resize(size), fmt))
    assert read.image.size == decoded and read.original_size == size
    assert min(read.image.size) >= min(MIN_SIDE, *size)
    assert read.scale == pytest.approx(decoded[0] / size[0])


def test_a_turned_big_photo_reports_its_upright_size():
    exif = Image.Exif()
    exif[0x0112] = 6
    read = read_photo(_encode(_hand_like(800).resize((800, 600)), "JPEG", exif=exif))
    assert read.original_size == (600, 800) and read.image.size == (300, 400)


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG that declares enormous dimensions (a decompression bomb)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF
        )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_before_decoding(tmp_path):
    """Refused from the header: decoding 10^10 pixels under a 4 GiB address-space limit
    would fail with a different error (MemoryError), so the message proves no decode."""
    import subprocess
    import sys

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(100_000, 100_000))
    assert bomb.stat().st_size < 2000
    script = (
        "import resource, sys; "
        "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)); "
        "from signdigits.serving.photo import read_photo, ImageError\n"
        "try:\n    read_photo(open(sys.argv[1], 'rb').read())\n"
        "except ImageError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(bomb)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pixel limit (refused before decoding)" in done.stdout
    with pytest.raises(ImageError, match="pixel limit"):
        read_photo(bomb.read_bytes())
    with pytest.raises(ImageError, match="pixel limit"):
        read_photo(bomb)  # a path too


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_the_pixel_cap_is_the_callers(fmt):
    data = _encode(_hand_like(400), fmt)
    assert read_photo(data, max_pixels=400 * 400).original_size == (400, 400)
    with pytest.raises(ImageError, match="over the 159,999-pixel limit"):
        read_photo(data, max_pixels=400 * 400 - 1)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty file"),
        (b"<html><body>not a picture</body></html>", "not an image"),
        (b"just some text, named .jpg", "not an image"),
    ],
)
def test_unreadable_inputs_raise_clear_errors(data, message):
    with pytest.raises(ImageError, match=message):
        read_photo(data)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(ImageError):
        read_photo(tmp_path / "gone.jpg")


def test_truncated_jpeg_is_an_error():
    data = _encode(_hand_like(400), "JPEG", quality=95)
    with pytest.raises(ImageError, match="cannot decode"):
        read_photo(data[: len(data) // 2])


def test_reading_refuses_special_files_and_final_symlinks(tmp_path):
    from signdigits.files.reading import read_image_file

    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(ImageError, match="not a regular file"):
        read_image_file(tmp_path / "pipe.jpg", max_bytes=1000)  # returns, does not block
    with pytest.raises(ImageError, match="not a regular file"):
        read_photo(tmp_path / "pipe.jpg")  # training's path: it blocked forever
    (tmp_path / "real.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "real.jpg", tmp_path / "link.jpg")
    with pytest.raises(ImageError, match="symlink"):
        read_image_file(tmp_path / "link.jpg", max_bytes=1000)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"x")
    with pytest.raises(ImageError, match="outside the job's folder"):
        read_image_file(outside / "secret.jpg", max_bytes=1000, within=tmp_path / "job")
