"""A job's images, keyset-paginated, and each one's pictures: ``/thumbnail``, ``/preview``.

A row's path is read through :class:`files.reading.JobFolder` of its job: nothing outside
the job's folder (by ``..``, a symlink, a swapped file) and nothing from a folder outside
``SIGNDIGITS_ALLOWED_ROOTS`` is ever served.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from signdigits.db.images import ImageCursor, ImageFilter, image_with_job, images_page
from signdigits.db.jobs import resolve_job
from signdigits.db.models import ImageStatus
from signdigits.db.reviews import current_reviews
from signdigits.files.paths import disk_name
from signdigits.files.reading import ImageError, JobFolder
from signdigits.web.deps import JobRef, SessionDep, SettingsDep
from signdigits.web.imaging import model_view, preview_png, thumbnail_jpeg
from signdigits.web.limits import MAX_ID, ImageId
from signdigits.web.schemas import ImageOut, ImagePage
from signdigits.web.uploads import upload_root

router = APIRouter()
_CACHE = {"Cache-Control": "private, max-age=3600"}  # a row's file is never rewritten


@router.get("/api/jobs/{job_id}/images", response_model=ImagePage, tags=["jobs"],
            summary="The job's images, keyset-paginated")
def list_images(
    job_id: JobRef, session: SessionDep,
    digit: Annotated[int | None, Query(ge=0, le=9)] = None,
    below_threshold: bool | None = None,
    status: ImageStatus | None = None,
    order: Annotated[str, Query(pattern="^(id|confidence)$")] = "id",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> ImagePage:
    job = resolve_job(session, ref=job_id)
    where = ImageFilter(digit, below_threshold, status.value if status else None)
    rows, following = images_page(session, job_id=job.id, where=where, order=order,
                                  limit=limit, cursor=decode_cursor(cursor))
    reviews = current_reviews(session, image_ids=[r.id for r in rows])
    return ImagePage(items=[ImageOut.of(r, reviews.get(r.id)) for r in rows],
                     next_cursor=encode_cursor(following))


def encode_cursor(cursor: ImageCursor | None) -> str | None:
    if cursor is None:
        return None
    raw = json.dumps([cursor.last_id, cursor.confidence, cursor.unscored]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None) -> ImageCursor | None:
    if not text:
        return None
    try:
        last_id, confidence, unscored = json.loads(
            base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        cursor = ImageCursor(int(last_id), None if confidence is None else float(confidence),
                             bool(unscored))
        if not 0 <= cursor.last_id <= MAX_ID or (
                cursor.confidence is not None and not math.isfinite(cursor.confidence)):
            raise ValueError
    except (ValueError, TypeError, OverflowError, RecursionError):  # [[[[... nests deep
        raise HTTPException(400, "cursor is not one this API returned") from None
    return cursor


def _read(session, settings, image_id: int) -> bytes:
    found = image_with_job(session, image_id=image_id)
    session.close()  # the file's read and decode need no connection held
    if found is None:
        raise HTTPException(404, f"no image {image_id}")
    image, job = found
    roots = [*settings.allowed_roots, upload_root(settings)] if settings.allowed_roots else []
    try:
        return JobFolder(job.root, allowed_roots=roots).read(
            disk_name(image.path, image.raw_path), max_bytes=settings.max_file_bytes)
    except ImageError as exc:
        raise HTTPException(422, f"cannot read image {image_id}: {exc}") from None


@router.get("/api/images/{image_id}/thumbnail", tags=["images"],
            summary="A small JPEG of the photo, EXIF-upright")
def thumbnail(session: SessionDep, settings: SettingsDep, image_id: ImageId,
              side: Annotated[int, Query(ge=32, le=1024, description="longest side, pixels")
                              ] = 256) -> Response:
    data = _read(session, settings, image_id)
    try:
        jpeg = thumbnail_jpeg(data, max_pixels=settings.max_image_pixels, side=side)
    except ImageError as exc:
        raise HTTPException(422, f"cannot show image {image_id}: {exc}") from None
    return Response(jpeg, media_type="image/jpeg", headers=_CACHE)


@router.get("/api/images/{image_id}/preview", tags=["images"],
            summary="The 64 x 64 PNG the model saw")
def preview(session: SessionDep, settings: SettingsDep, image_id: ImageId) -> Response:
    data = _read(session, settings, image_id)
    try:
        pixels = model_view(data, max_pixels=settings.max_image_pixels)
    except ImageError as exc:
        raise HTTPException(422, f"cannot show image {image_id}: {exc}") from None
    return Response(preview_png(pixels), media_type="image/png", headers=_CACHE)
