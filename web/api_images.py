"""``/api/images/{id}/thumbnail`` and ``/preview``, read with the workers' safe reading.

A row's path is read through :class:`files.reading.JobFolder` of its job: nothing outside
the job's folder (by ``..``, a symlink, a swapped file) and nothing from a folder outside
``SIGNDIGITS_ALLOWED_ROOTS`` is ever served.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from signdigits.db.images import image_with_job
from signdigits.files.paths import disk_name
from signdigits.files.reading import ImageError, JobFolder
from signdigits.web.imaging import model_view, preview_png, thumbnail_jpeg
from signdigits.web.limits import ImageId
from signdigits.web.state import web_state
from signdigits.web.uploads import upload_root

router = APIRouter(prefix="/api/images", tags=["images"])
_CACHE = {"Cache-Control": "private, max-age=3600"}  # a row's file is never rewritten


def _read(request: Request, image_id: int) -> bytes:
    state = web_state(request)
    with state.sessions() as session:
        found = image_with_job(session, image_id=image_id)
    if found is None:
        raise HTTPException(404, f"no image {image_id}")
    image, job = found
    settings = state.settings
    roots = [*settings.allowed_roots, upload_root(settings)] if settings.allowed_roots else []
    try:
        return JobFolder(job.root, allowed_roots=roots).read(
            disk_name(image.path, image.raw_path), max_bytes=settings.max_file_bytes)
    except ImageError as exc:
        raise HTTPException(422, f"cannot read image {image_id}: {exc}") from None


@router.get("/{image_id}/thumbnail", summary="A small JPEG of the photo, EXIF-upright")
def thumbnail(request: Request, image_id: int = ImageId,
              side: int = Query(256, ge=32, le=1024, description="longest side, pixels")
              ) -> Response:
    data = _read(request, image_id)
    try:
        jpeg = thumbnail_jpeg(data, max_pixels=web_state(request).settings.max_image_pixels,
                              side=side)
    except ImageError as exc:
        raise HTTPException(422, f"cannot show image {image_id}: {exc}") from None
    return Response(jpeg, media_type="image/jpeg", headers=_CACHE)


@router.get("/{image_id}/preview", summary="The 64 x 64 PNG the model saw")
def preview(request: Request, image_id: int = ImageId) -> Response:
    data = _read(request, image_id)
    try:
        pixels = model_view(data, max_pixels=web_state(request).settings.max_image_pixels)
    except ImageError as exc:
        raise HTTPException(422, f"cannot show image {image_id}: {exc}") from None
    return Response(preview_png(pixels), media_type="image/png", headers=_CACHE)
