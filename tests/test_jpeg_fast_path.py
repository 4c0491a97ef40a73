"""JPEGs decoded by libjpeg-turbo directly (``jpeg.decode_rgb``) give exactly the pixels
of Pillow's path in ``read_photo``.

The hand models and the classifier's training saw Pillow's pixels; a fast path that
differed by one level on some photos would move the landmarks the classifier reads. Each
case here is decoded twice, once as it is served and once with the fast path turned off,
and the two must be equal; each also says whether the fast path must be the one taken, so
a fast path that quietly always fell back to Pillow fails too.
"""

from __future__ import annotations

import io
import re
import struct

import numpy as np
import pytest
from PIL import Image

from signdigits.files.reading import ImageError
from signdigits.serving import jpeg, photo
from signdigits.serving.photo import MIN_SIDE


def read_pixels(source, **options) -> np.ndarray:
    """The upright RGB pixels read_photo serves."""
    return np.asarray(photo.read_photo(source, **options).image)


def fast_path(data: bytes, *, max_pixels: int = 10**8):
    """What the fast path alone makes of ``data`` (None: it leaves it to Pillow)."""
    return jpeg.decode_rgb(data, max_pixels=max_pixels, min_side=MIN_SIDE)


def _picture(width: int, height: int) -> Image.Image:
    """An asymmetric RGB picture with edges and a gradient (chroma and detail to decode)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)),
                    ((x + 2 * y) % 97) * 2], axis=-1).astype(np.uint8)
    rgb[(x - width * 0.3) ** 2 + (y - height * 0.25) ** 2 < (min(width, height) * 0.15) ** 2] = 30
    return Image.fromarray(rgb, "RGB")


def _jpeg(img: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def _with_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def _served_and_pillows(data, monkeypatch) -> tuple[np.ndarray, np.ndarray, bool]:
    """(pixels as served, pixels from Pillow's path alone, whether the fast path decoded)."""
    taken = []
    real = jpeg.decode_rgb

    def recording(*args, **kwargs):
        found = real(*args, **kwargs)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(photo, "decode_rgb", recording)
    served = read_pixels(data)
    monkeypatch.setattr(photo, "decode_rgb", lambda *args, **kwargs: None)
    pillows = read_pixels(data)
    monkeypatch.undo()
    return served, pillows, taken == [True]


def test_the_foreign_photos_take_the_fast_path_at_half_size(monkeypatch):
    """640 x 480 webcam frames: decoded at 320 x 240 (the DCT's 1/2), Pillow's pixels."""
    from tests.conftest import DATASET

    folder = DATASET.parent / "foreign-photos"
    photos = sorted(folder.glob("*/*/*.jpg"))[::25]
    if not photos:
        pytest.skip(f"no foreign photos under {folder}")
    for path in photos:
        served, pillows, fast_path = _served_and_pillows(path.read_bytes(), monkeypatch)
        assert fast_path and np.array_equal(served, pillows), path
        assert served.shape == (240, 320, 3), path


def test_every_dataset_photo_takes_the_fast_path_with_pillows_pixels(dataset, monkeypatch):
    photos = sorted(p for p in dataset.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg"))
    assert len(photos) > 1000
    differ, fell_back = [], []
    for path in photos:
        served, pillows, fast = _served_and_pillows(path.read_bytes(), monkeypatch)
        if not np.array_equal(served, pillows):
            differ.append(path.name)
        if not fast:
            fell_back.append(path.name)
    assert differ == [] and fell_back == []


def test_a_path_takes_the_fast_path_too(dataset, monkeypatch):
    path = next((dataset / "3").iterdir())
    served, pillows, fast = _served_and_pillows(path, monkeypatch)
    assert fast and np.array_equal(served, pillows)
    assert np.array_equal(served, read_pixels(path.read_bytes()))


@pytest.mark.parametrize("size", [(100, 100), (257, 256), (640, 480), (127, 300),
                                  (1000, 750), (1500, 1499), (3024, 4032)])
@pytest.mark.parametrize("options", [
    {"quality": 90},
    {"quality": 95, "subsampling": 0},  # 4:4:4
    {"quality": 75, "subsampling": 2},  # 4:2:0
    {"quality": 85, "progressive": True},
])
def test_sizes_and_encodings_match_pillow(size, options, monkeypatch):
    """Big photos exercise each DCT scale (1, 2, 4, 8): the smallest keeping 240 a side."""
    served, pillows, fast = _served_and_pillows(_jpeg(_picture(*size), **options), monkeypatch)
    assert fast and np.array_equal(served, pillows)


def test_a_gray_jpeg_matches_pillow(monkeypatch):
    data = _jpeg(_picture(300, 200).convert("L"), quality=90)
    served, pillows, fast = _served_and_pillows(data, monkeypatch)
    assert fast and np.array_equal(served, pillows)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(orientation, monkeypatch):
    data = _jpeg(_picture(160, 120), quality=92, exif=_with_orientation(orientation))
    served, pillows, fast = _served_and_pillows(data, monkeypatch)
    assert fast and np.array_equal(served, pillows)
    if orientation != 1:  # the test can tell an orientation that was ignored
        plain = read_pixels(_jpeg(_picture(160, 120), quality=92))
        assert served.shape != plain.shape or not np.array_equal(served, plain)


def _xmp_orientation(value: int) -> bytes:
    return (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
            b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="%d"/>'
            b"</rdf:RDF></x:xmpmeta>" % value)


def test_an_orientation_only_in_xmp_is_left_to_pillow(monkeypatch):
    data = _jpeg(_picture(160, 120), quality=92, xmp=_xmp_orientation(6))
    served, pillows, fast = _served_and_pillows(data, monkeypatch)
    assert not fast and np.array_equal(served, pillows)
    assert served.shape == (160, 120, 3)  # Pillow turned it by the XMP orientation


def test_exif_wins_over_xmp_on_the_fast_path(monkeypatch):
    data = _jpeg(_picture(160, 120), quality=92, exif=_with_orientation(3),
                 xmp=_xmp_orientation(6))
    served, pillows, fast = _served_and_pillows(data, monkeypatch)
    assert fast and np.array_equal(served, pillows)


@pytest.mark.parametrize("case", ["cmyk", "junk-between-segments", "corrupt-scan"])
def test_what_the_fast_path_does_not_know_is_left_to_pillow(case, monkeypatch):
    good = _jpeg(_picture(200, 200), quality=90)
    if case == "cmyk":
        data = _jpeg(_picture(200, 200).convert("CMYK"), quality=90)
    elif case == "junk-between-segments":
        after_app0 = 4 + int.from_bytes(good[4:6], "big")
        data = good[:after_app0] + b"\x00\x00" + good[after_app0:]
    else:  # flipped bits in the entropy-coded data: libjpeg-turbo warns, Pillow decides
        scan = good.rindex(b"\xff\xda")
        data = bytearray(good)
        for at in range(scan + 40, len(good) - 10, 23):
            data[at] ^= 0x5A
        data = bytes(data)
    assert fast_path(data) is None
    try:
        expected = read_pixels(data)
    except ImageError as exc:  # Pillow's verdict, whatever it is, is what is served
        monkeypatch.setattr(photo, "decode_rgb", lambda *args, **kwargs: None)
        with pytest.raises(ImageError, match=re.escape(str(exc))):
            read_pixels(data)
    else:
        served, pillows, _ = _served_and_pillows(data, monkeypatch)
        assert np.array_equal(served, pillows) and np.array_equal(expected, served)


def test_truncated_and_oversized_jpegs_get_pillows_errors():
    data = _jpeg(_picture(400, 400), quality=95)
    assert fast_path(data[: len(data) // 2]) is None
    with pytest.raises(ImageError, match="cannot decode"):
        read_pixels(data[: len(data) // 2])
    assert fast_path(data, max_pixels=400 * 400 - 1) is None
    with pytest.raises(ImageError, match="over the 159,999-pixel limit"):
        read_pixels(data, max_pixels=400 * 400 - 1)


def test_a_file_of_several_pictures_is_left_to_pillow(monkeypatch):
    """A phone's gain map or a stereo pair makes an MPO, which Pillow decodes in colour."""
    buffer = io.BytesIO()
    _picture(300, 200).save(buffer, format="MPO", save_all=True, quality=90,
                            append_images=[_picture(300, 200).rotate(90, expand=True)])
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    served, pillows, fast = _served_and_pillows(data, monkeypatch)
    assert not fast and np.array_equal(served, pillows)
    assert served.shape == (200, 300, 3)  # the first picture, not the turned second


def test_a_second_orientation_entry_is_left_to_pillow():
    exif = _with_orientation(6).tobytes()
    tiff = bytearray(exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    order = "<" if tiff[:2] == b"II" else ">"
    offset = int.from_bytes(tiff[4:8], "little" if order == "<" else "big")
    count = int.from_bytes(tiff[offset:offset + 2], "little" if order == "<" else "big")
    entry = bytes(tiff[offset + 2:offset + 14])
    tiff[offset:offset + 2] = (count + 1).to_bytes(2, "little" if order == "<" else "big")
    tiff[offset + 2:offset + 2] = entry
    with pytest.raises(jpeg._Unsure):
        jpeg._ifd0_orientation(bytes(tiff))
    assert jpeg._ifd0_orientation(exif[6:] if exif.startswith(b"Exif") else exif) == 6


def _exif_segment(tiff: bytes) -> bytes:
    return b"\xff\xe1" + (len(tiff) + 8).to_bytes(2, "big") + b"Exif\x00\x00" + tiff


def _with_segment(jpeg_data: bytes, segment: bytes) -> bytes:
    return jpeg_data[:2] + segment + jpeg_data[2:]


def test_a_lossless_jpeg_is_left_to_pillow_not_to_a_crash(tmp_path):
    """libjpeg-turbo cannot scale a lossless (SOF3) frame and wrote past simplejpeg's
    buffer: the worker process died. Run apart, so a regression fails only this test."""
    import subprocess
    import sys

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300), np.uint8)).save(
        buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    data[data.index(b"\xff\xc0") + 1] = 0xC3
    scan = data.index(b"\xff\xda")
    end = scan + 2 + int.from_bytes(data[scan + 2:scan + 4], "big")
    data[end - 3:end] = b"\x01\x00\x00"  # lossless: predictor 1, no point transform
    (tmp_path / "lossless.jpg").write_bytes(bytes(data))
    script = ("import sys; from signdigits.serving.jpeg import decode_rgb; "
              "print(decode_rgb(open(sys.argv[1], 'rb').read(), max_pixels=10**8, "
              "min_side=240))")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "lossless.jpg")],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "None"), done.stderr[-500:]


def test_a_sampling_simplejpeg_cannot_name_is_left_to_pillow(monkeypatch):
    """Luma sampled 1 x 4 (`cjpeg -sample 1x4`): simplejpeg's header reader raised KeyError."""
    data = bytearray(_jpeg(Image.new("RGB", (64, 64), (90, 120, 200)), subsampling=0))
    data[data.index(b"\xff\xc0") + 11] = 0x14
    data = bytes(data)
    assert fast_path(data) is None
    served, pillows, fast = _served_and_pillows(data, monkeypatch)
    assert not fast and np.array_equal(served, pillows)


def test_an_exif_entry_pointing_outside_its_block_is_left_to_pillow(monkeypatch):
    """Pillow gives up on IFD0 at such an entry and never sees the orientation after it."""
    tiff = (b"II*\x00" + struct.pack("<IH", 8, 2)
            + struct.pack("<HHII", 0x010F, 2, 20, 5000)  # Make: 20 bytes at offset 5000
            + struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0) + b"\x00" * 4)
    data = _with_segment(_jpeg(_picture(160, 120), quality=92), _exif_segment(tiff))
    assert fast_path(data) is None
    served, pillows, fast = _served_and_pillows(data, monkeypatch)
    assert not fast and np.array_equal(served, pillows)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_pillow_cannot_write_back_still_gives_the_upright_picture(fmt, monkeypatch):
    """An image width stored as a fraction, and orientation 6: ImageOps.exif_transpose
    raised struct.error rewriting the EXIF block, and the error failed the whole batch."""
    tiff = (b"MM\x00*" + struct.pack(">IH", 8, 2) + struct.pack(">HHII", 0x0100, 5, 1, 38)
            + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)
            + struct.pack(">II", 72, 1))
    stored = _picture(160, 120)
    buffer = io.BytesIO()
    stored.save(buffer, format=fmt, exif=b"Exif\x00\x00" + tiff, lossless=True)
    served, pillows, fast = _served_and_pillows(buffer.getvalue(), monkeypatch)
    assert fast == (fmt == "JPEG") and np.array_equal(served, pillows)
    upright = io.BytesIO()
    stored.transpose(Image.Transpose.ROTATE_270).save(upright, format="PNG")
    if fmt != "JPEG":
        assert np.array_equal(served, read_pixels(upright.getvalue()))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_thumbnail_of_exif_pillow_cannot_write_back_is_upright(fmt):
    """The web's thumbnail turns the photo as the workers do: it had still called
    ImageOps.exif_transpose, and answered 500 (struct.error) for this file."""
    from signdigits.web.imaging import thumbnail_jpeg

    tiff = (b"MM\x00*" + struct.pack(">IH", 8, 2) + struct.pack(">HHII", 0x0100, 5, 1, 38)
            + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)
            + struct.pack(">II", 72, 1))
    buffer = io.BytesIO()
    _picture(160, 120).save(buffer, format=fmt, exif=b"Exif\x00\x00" + tiff)
    thumbnail = Image.open(io.BytesIO(thumbnail_jpeg(buffer.getvalue(), max_pixels=10**8)))
    assert thumbnail.format == "JPEG" and thumbnail.size == (120, 160)  # turned upright


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_orientation_is_applied_as_pillows_exif_transpose_applies_it(orientation):
    from PIL import ImageOps

    buffer = io.BytesIO()
    _picture(90, 60).save(buffer, format="PNG", exif=_with_orientation(orientation))
    img = Image.open(io.BytesIO(buffer.getvalue()))
    img.load()
    ours = np.asarray(photo.upright(img))
    assert np.array_equal(ours, np.asarray(ImageOps.exif_transpose(img)))
