"""Where a worker reads a job's images: its folder, or its prefix in object storage.

Both are read by the same rules (files.reading, files.objects): the size cap before a byte
is read, nothing outside the job's folder or prefix, nothing outside
SIGNDIGITS_ALLOWED_ROOTS, and a file or object changed since submit refused. An object is
also checked against the pixel cap by its header before the rest of it is fetched.
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from signdigits.config.settings import Settings
from signdigits.files.objects import JobObjects
from signdigits.files.paths import is_object_url
from signdigits.files.reading import ImageError, JobFolder
from signdigits.serving.photo import decoding, open_image

# (relative path, the ETag listed for it or None) -> the image's bytes
ReadImage = Callable[[str, str | None], bytes]


def job_reader(root: str, settings: Settings) -> ReadImage:
    if is_object_url(root):
        objects = JobObjects(root, allowed_roots=settings.allowed_roots)

        def check(head: bytes) -> None:
            check_pixels_in_header(head, max_pixels=settings.max_image_pixels)

        return lambda path, etag: objects.read(path, etag=etag, check_header=check,
                                               max_bytes=settings.max_file_bytes)
    folder = JobFolder(root, allowed_roots=settings.allowed_roots)
    return lambda path, etag: folder.read(path, max_bytes=settings.max_file_bytes)


def check_pixels_in_header(head: bytes, *, max_pixels: int) -> None:
    """Refuse an image whose header, in its first bytes, declares more than ``max_pixels``
    (the message serving.photo gives when it refuses one). A header these bytes do not
    hold whole says nothing: the decode checks the whole file again."""
    try:
        with open_image(head) as img:
            width, height = img.size
    except Image.DecompressionBombError as exc:  # Pillow's own cap, past ours: its words
        with decoding(head):  # serving.photo's one line for it, as a folder's file gets
            raise exc
    except Exception:  # noqa: BLE001 - a header cut short: the decoder decides
        return
    if width * height > max_pixels:
        raise ImageError(f"image is {width}x{height} = {width * height:,} pixels, over the "
                         f"{max_pixels:,}-pixel limit (refused before decoding)")
