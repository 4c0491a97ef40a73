"""Each image's pictures: ``/thumbnail``, ``/annotated.jpg`` (the photo with the hands the
reader found) and ``/hand.png`` (the square its landmark model read).

A row's path is read through :class:`files.reading.JobFolder` of its job (or, for an
``s3://`` job, as its worker read the object: the ETag listed, the same caps): nothing
outside the job's folder or prefix (by ``..``, a symlink, a swapped file or object) and
nothing from outside ``SIGNDIGITS_ALLOWED_ROOTS`` is ever served. The hands are drawn
from the row's stored JSON: the web loads no model.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from sqlalchemy.orm import Session

from signdigits.config.settings import Settings
from signdigits.db.images import image_with_job
from signdigits.db.models import Image, ImageStatus, Job
from signdigits.files.objects import StorageRefused, StorageUnavailable
from signdigits.files.paths import disk_name, is_object_url
from signdigits.files.reading import ImageError, JobFolder
from signdigits.web.deps import SessionDep, SettingsDep
from signdigits.web.imaging import (
    annotated_jpeg,
    hand_png,
    stored_hands,
    thumbnail_jpeg,
)
from signdigits.web.limits import ImageId
from signdigits.web.upload_store import upload_root
from signdigits.worker.sources import job_reader

router = APIRouter(prefix="/api/images", tags=["images"])
# A finished row's file and answer are never rewritten; a pending row's hands are to come.
_CACHE = {"Cache-Control": "private, max-age=3600"}
_NO_CACHE = {"Cache-Control": "no-cache"}


def _row(session: Session, image_id: int) -> tuple[Image, Job]:
    found = image_with_job(session, image_id=image_id)
    session.close()  # the file's read and decode need no connection held
    if found is None:
        raise HTTPException(404, f"no image {image_id}")
    return found


def _file(settings: Settings, image: Image, job: Job) -> bytes:
    try:
        if is_object_url(job.root):
            # Read as its worker read it: the object the listing saw (its ETag), by the
            # same caps; a replaced object is refused rather than shown.
            return job_reader(job.root, settings)(image.path, image.etag)
        roots = [*settings.allowed_roots, upload_root(settings)] if settings.allowed_roots \
            else []
        return JobFolder(job.root, allowed_roots=roots).read(
            disk_name(image.path, image.raw_path), max_bytes=settings.max_file_bytes)
    except ImageError as exc:
        raise HTTPException(422, f"cannot read image {image.id}: {exc}") from None
    except (StorageUnavailable, StorageRefused) as exc:
        raise HTTPException(503, f"cannot read image {image.id}: object storage: {exc}",
                            headers={"Retry-After": "5"}) from None


def _read(session: Session, settings: Settings, image_id: int) -> tuple[Image, bytes]:
    image, job = _row(session, image_id)
    return image, _file(settings, image, job)


def _why_none(image: Image) -> str:
    reading = image.reading
    if image.status == ImageStatus.ERROR:
        return "the file could not be read"
    if image.status != ImageStatus.DONE:
        return "it was cancelled" if image.status == ImageStatus.CANCELLED else "not read yet"
    return str(reading) if reading else "none was stored"


def _cache(image: Image) -> dict[str, str]:
    return _NO_CACHE if image.status == ImageStatus.PENDING else _CACHE


@router.get("/{image_id}/thumbnail", summary="A small JPEG of the photo, EXIF-upright")
def thumbnail(session: SessionDep, settings: SettingsDep, image_id: ImageId,
              side: Annotated[int, Query(ge=32, le=1024, description="longest side, pixels")
                              ] = 256) -> Response:
    image, data = _read(session, settings, image_id)
    try:
        jpeg = thumbnail_jpeg(data, max_pixels=settings.max_image_pixels, side=side)
    except ImageError as exc:
        raise HTTPException(422, f"cannot show image {image_id}: {exc}") from None
    return Response(jpeg, media_type="image/jpeg", headers=_CACHE)


@router.get("/{image_id}/annotated.jpg",
            summary="The photo with each hand found drawn: box, bones, 21 points")
def annotated(session: SessionDep, settings: SettingsDep, image_id: ImageId,
              side: Annotated[int, Query(ge=64, le=1600, description="longest side, pixels")
                              ] = 640) -> Response:
    image, data = _read(session, settings, image_id)
    try:
        jpeg = annotated_jpeg(data, stored_hands(image), max_pixels=settings.max_image_pixels,
                              side=side)
    except ImageError as exc:
        raise HTTPException(422, f"cannot show image {image_id}: {exc}") from None
    return Response(jpeg, media_type="image/jpeg", headers=_cache(image))


@router.get("/{image_id}/hand.png",
            summary="The 224 x 224 square around the answer's hand that the landmark model read",
            responses={404: {"description": "no such image, or no hand found in it"}})
def hand(session: SessionDep, settings: SettingsDep, image_id: ImageId) -> Response:
    image, job = _row(session, image_id)
    hands = stored_hands(image)
    if not hands:  # said before the file is read
        raise HTTPException(404, f"image {image_id} has no hand ({_why_none(image)})")
    data = _file(settings, image, job)
    try:
        png = hand_png(data, hands, max_pixels=settings.max_image_pixels)
    except ImageError as exc:
        raise HTTPException(422, f"cannot show image {image_id}: {exc}") from None
    return Response(png, media_type="image/png", headers=_CACHE)
