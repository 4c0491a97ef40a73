"""A job's images, keyset-paginated (each one's pictures are in :mod:`.pictures`)."""

from __future__ import annotations

import base64
import json
import math
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from signdigits.db.images import ImageCursor, ImageFilter, images_page
from signdigits.db.jobs import resolve_job
from signdigits.db.models import ImageStatus
from signdigits.db.reviews import current_reviews
from signdigits.web.deps import JobRef, SessionDep
from signdigits.web.limits import MAX_ID
from signdigits.web.schemas import ImageOut, ImagePage

router = APIRouter()


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
