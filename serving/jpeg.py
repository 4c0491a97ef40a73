"""JPEG photos, the common case, decoded by libjpeg-turbo without Pillow's header parser.

Pillow spends most of a small JPEG's cost in Python: opening a dataset photo (100 x 100,
8.9 kB) took 0.23 ms, most of it walking markers and parsing the EXIF block, against
0.12 ms for the decode itself. simplejpeg calls libjpeg-turbo directly, so here only the
markers before the image data are walked, and only IFD0's orientation entry is read.

:func:`decode_rgb` returns exactly the pixels Pillow's path in :mod:`serving.photo` gives
(RGB at the DCT scale its ``draft`` picks, the EXIF orientation applied) or ``None``, and
the caller then takes Pillow's path. Everything unusual goes there: CMYK,
an RGB-coded JPEG, lossless or arithmetic-coded frames, a sampling simplejpeg cannot
name, a stream libjpeg-turbo warns about (truncated, corrupt, junk), an image over the
pixel limit, an orientation given only in XMP, an EXIF block Pillow would read
differently, a file of several pictures (Pillow decodes an MPO in colour, without its
draft). Removing this costs speed, never correctness; widening what it
accepts without a test against Pillow's pixels risks serving pixels the model was not
trained on, or worse: libjpeg-turbo crashed the process on a lossless frame.
"""

from __future__ import annotations

import struct

import simplejpeg
from PIL import Image

_SOI = b"\xff\xd8\xff"
_EXIF = b"Exif\x00\x00"
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_MPF = b"MPF\x00"
# Baseline, extended and progressive Huffman-coded frames. libjpeg-turbo cannot scale a
# lossless one (SOF3) and writes past simplejpeg's buffer: the process dies.
_PLAIN_FRAMES = (0xC0, 0xC1, 0xC2)
_ORIENTATION_TAG = 0x0112
# Bytes per value of each TIFF field type Pillow reads (TiffTags.TYPES).
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
               13: 4, 16: 8}
_SHORT = 3
# What ImageOps.exif_transpose does for each EXIF orientation value.
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class _Unsure(Exception):
    """This file is not the plain case: Pillow's path decides what it is."""


def is_jpeg(head: bytes) -> bool:
    return head[:3] == _SOI


def decode_rgb(data: bytes, *, max_pixels: int, min_side: int
               ) -> tuple[Image.Image, tuple[int, int]] | None:
    """The RGB image Pillow's path would make of ``data`` at the DCT scale keeping the
    shorter side at least ``min_side``, and the photo's full size upright; or None to take
    that path."""
    plain = _plain_scale(data, max_pixels=max_pixels, smallest=lambda w, h: dct_scale(
        w, h, min_side))
    image = None if plain is None else _decode(data, *plain)
    if plain is None or image is None:
        return None
    width, height, _, transpose = plain
    turned = transpose in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
                           Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)
    return image, ((height, width) if turned else (width, height))


def dct_scale(width: int, height: int, min_side: int) -> int:
    """The largest DCT scale (8, 4, 2 or 1) that keeps the shorter side >= ``min_side``."""
    return next(s for s in (8, 4, 2, 1) if min(width, height) // s >= min_side or s == 1)


def _plain_scale(data: bytes, *, max_pixels: int, smallest) -> tuple[int, int, int,
                                                                     Image.Transpose | None] | None:
    """(width, height, scale, transpose) for a plain JPEG the fast path may decode, else None."""
    if not is_jpeg(data):
        return None
    try:
        # The markers first: a frame libjpeg-turbo must not be handed never reaches it.
        transpose = ORIENTATION_TRANSPOSE.get(_orientation(data))
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except Exception:  # noqa: BLE001 - whatever it is, Pillow's path gives the verdict
        return None
    pixels = width * height
    limit = Image.MAX_IMAGE_PIXELS
    if colorspace not in ("YCbCr", "Gray") or pixels > max_pixels or (
            limit is not None and pixels > limit):
        return None
    return width, height, smallest(width, height), transpose


def _decode(data: bytes, width: int, height: int, scale: int,
            transpose: Image.Transpose | None) -> Image.Image | None:
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace="RGB",
                                        min_width=-(-width // scale),
                                        min_height=-(-height // scale), strict=True)
    except Exception:  # noqa: BLE001 - a stream libjpeg-turbo warns about: Pillow decides
        return None
    image = Image.fromarray(pixels, "RGB")
    return image.transpose(transpose) if transpose is not None else image


def _orientation(data: bytes) -> int:
    """EXIF orientation as Pillow's ``getexif`` reads it from a JPEG; 1 when there is none."""
    exif, xmp = _metadata_segments(data)
    if exif is not None:
        value = _ifd0_orientation(exif)
        if value is not None:
            return value
    if xmp is not None and b"tiff:Orientation" in xmp:
        raise _Unsure  # Pillow falls back to XMP's orientation; let it
    return 1


def _metadata_segments(data: bytes) -> tuple[bytes | None, bytes | None]:
    """The EXIF and XMP APP1 payloads, walking the markers up to the start of scan."""
    exif = xmp = frame = None
    pos = 2
    while True:
        if data[pos] != 0xFF:
            raise _Unsure  # junk between segments: Pillow skips it, we do not guess
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: no more metadata
            if frame not in _PLAIN_FRAMES:
                raise _Unsure
            return exif, xmp
        if marker == 0xFF or 0xD0 <= marker <= 0xD8 or marker == 0x01:
            raise _Unsure  # fill bytes or a marker without a length
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2 or pos + 2 + length > len(data):
            raise _Unsure
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if frame is not None:
                raise _Unsure
            frame = marker
        if marker == 0xE2 and data.startswith(_MPF, pos + 4):
            # Several pictures (a phone's gain map, a stereo pair): Pillow opens it as MPO
            # and reads its first picture its own way.
            raise _Unsure
        if marker == 0xE1:
            payload = data[pos + 4:pos + 2 + length]
            if payload.startswith(_EXIF):
                if exif is not None:
                    raise _Unsure  # Pillow joins several EXIF blocks into one
                exif = payload[len(_EXIF):]
            elif payload.startswith(_XMP):
                xmp = payload
        pos += 2 + length


def _ifd0_orientation(tiff: bytes) -> int | None:
    """IFD0's orientation (tag 0x0112): a SHORT, or None when IFD0 has none."""
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(tiff[:4])
    if order is None:
        raise _Unsure
    (offset,) = struct.unpack_from(order + "I", tiff, 4)
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    if offset + 2 + 12 * count > len(tiff):
        raise _Unsure
    found = None
    for entry in range(offset + 2, offset + 2 + 12 * count, 12):
        tag, kind, values, where = struct.unpack_from(order + "HHII", tiff, entry)
        size = _TYPE_SIZES.get(kind, 0) * values
        if kind not in _TYPE_SIZES or (size > 4 and where + size > len(tiff)):
            raise _Unsure  # Pillow skips or stops at such an entry: its reading decides
        if tag == _ORIENTATION_TAG:
            if kind != _SHORT or values != 1 or found is not None:
                raise _Unsure
            found = struct.unpack_from(order + "H", tiff, entry + 8)[0]
    return found
