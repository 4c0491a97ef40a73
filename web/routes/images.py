"""A job's images, keyset-paginated, and how many a filter matches (each one's pictures
are in :mod:`.pictures`).

``batch`` asks for the finished rows of those batches only: the job page's event stream
names the batches stored since its last event, and the page fetches just their rows.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from signdigits.db.images import ImageCursor, images_count, images_page
from signdigits.db.jobs import resolve_job
from signdigits.db.reviews import current_reviews
from signdigits.web.deps import JobRef, SessionDep
from signdigits.web.limits import MAX_ID
from signdigits.web.page_schemas import ImageCount, ImageQuery, image_query
from signdigits.web.schemas import ImageOut, ImagePage

router = APIRouter()


@router.get("/api/jobs/{job_id}/images", response_model=ImagePage, tags=["jobs"],
            summary="The job's images, keyset-paginated")
def list_images(
    job_id: JobRef, session: SessionDep,
    query: Annotated[ImageQuery, Depends(image_query)],
    order: Annotated[str, Query(pattern="^(id|confidence)$")] = "id",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
    batch: Annotated[list[Annotated[int, Query(ge=-1, le=2**31 - 1)]] | None, Query(
        max_length=500, description="only these batches' finished rows (repeat it)")] = None,
) -> ImagePage:
    job = resolve_job(session, ref=job_id)
    where = query.where(batch)
    rows, following = images_page(session, job_id=job.id, where=where, order=order,
                                  limit=limit, cursor=decode_cursor(cursor))
    reviews = current_reviews(session, image_ids=[r.id for r in rows])
    return ImagePage(items=[ImageOut.of(r, reviews.get(r.id)) for r in rows],
                     next_cursor=encode_cursor(following))


@router.get("/api/jobs/{job_id}/images/count", response_model=ImageCount, tags=["jobs"],
            summary="How many of the job's images the filters match")
def count_images(job_id: JobRef, session: SessionDep,
                 query: Annotated[ImageQuery, Depends(image_query)]) -> ImageCount:
    job = resolve_job(session, ref=job_id)
    return ImageCount(count=images_count(session, job_id=job.id, where=query.where()))


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
