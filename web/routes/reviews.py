"""The review queue: ``GET /api/jobs/{id}/review`` and ``POST /api/images/{id}/review``;
many images at once: ``POST /api/jobs/{id}/reviews``.

The reviewer is whoever the request authenticated as (:func:`web.auth.request_user`),
never a name the client sends. A later review of an image is a new row: the current
answer changes, the earlier one stays in the history.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from signdigits.db.images import image_ids_matching
from signdigits.db.jobs import resolve_job
from signdigits.db.models import Image
from signdigits.db.reviews import (
    add_hand_review,
    add_review,
    add_reviews,
    review_history,
    review_progress,
    review_queue,
)
from signdigits.web.deps import JobRef, SessionDep, UserDep, validated
from signdigits.web.fields import ImageIds, request_body
from signdigits.web.limits import ImageId, json_body
from signdigits.web.page_schemas import MAX_BULK, BulkReviewIn, BulkReviewOut
from signdigits.web.review_schemas import (
    ReviewHistory,
    ReviewIn,
    ReviewOut,
    ReviewQueue,
    ReviewStored,
)
from signdigits.web.schemas import ImageOut

router = APIRouter(tags=["reviews"])


@router.get("/api/jobs/{job_id}/review", response_model=ReviewQueue,
            summary="The next unreviewed below-threshold images, lowest confidence first")
def queue(job_id: JobRef, session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 20,
          skip: Annotated[ImageIds | None, Query(description="comma-separated image ids "
                                                             "already shown")] = None,
          ) -> ReviewQueue:
    job = resolve_job(session, ref=job_id)
    rows = review_queue(session, job_id=job.id, limit=limit, skip=skip or [])
    reviewed, total = review_progress(session, job_id=job.id)
    return ReviewQueue(job=job.id, threshold=job.threshold, reviewed=reviewed, total=total,
                       items=[ImageOut.of(r) for r in rows])


@router.post("/api/images/{image_id}/review", response_model=ReviewStored,
             summary='Record a review: {"digit": 7}, {"unusable": true}, or one hand\'s: '
                     '{"hand": 1, "digit": 3}',
             openapi_extra=request_body({"application/json": ReviewIn}))
async def post_review(request: Request, session: SessionDep, reviewer: UserDep,
                      image_id: ImageId) -> ReviewStored:
    # Read by hand, whatever the content type says (as `curl -d` sends it).
    answer = validated(ReviewIn, await json_body(request))
    return await run_in_threadpool(_record, session, image_id, answer, reviewer)


def _record(session: Session, image_id: int, answer: ReviewIn, reviewer: str) -> ReviewStored:
    with session.begin():
        image = session.get(Image, image_id, with_for_update=True)
        if image is None:
            raise HTTPException(404, f"no image {image_id}")
        if answer.hand is None:
            review = add_review(session, image=image, digit=answer.digit,  # NotReviewable: 409
                                unusable=answer.unusable, reviewer=reviewer)
        else:
            review = add_hand_review(session, image=image, hand=answer.hand,
                                     digit=answer.digit, reviewer=reviewer)
        stored = ReviewOut.model_validate(review)
        job_id = image.job_id
    reviewed, total = review_progress(session, job_id=job_id)
    return ReviewStored(**stored.model_dump(), queue_reviewed=reviewed, queue_total=total,
                        reviewed=reviewed, total=total)


@router.get("/api/images/{image_id}/reviews", response_model=ReviewHistory,
            summary="Every review of an image, oldest first")
def history(session: SessionDep, image_id: ImageId) -> ReviewHistory:
    if session.get(Image, image_id) is None:
        raise HTTPException(404, f"no image {image_id}")
    return ReviewHistory(items=[ReviewOut.model_validate(r)
                                for r in review_history(session, image_id=image_id)])


@router.post("/api/jobs/{job_id}/reviews", response_model=BulkReviewOut,
             summary='One answer for many images: {"image_ids": [...], "digit": 3}, or '
                     '{"filter": {"below_threshold": true, "digit": 3}, "unusable": true}',
             openapi_extra=request_body({"application/json": BulkReviewIn}))
async def post_reviews(request: Request, session: SessionDep, reviewer: UserDep,
                       job_id: JobRef) -> BulkReviewOut:
    """One new review row per image, in one transaction: all of them or, on any refusal,
    none. With ``filter``, every classified image it matches when the request is handled
    (``expected``: the count the person saw; another count is a 409, nothing stored)."""
    answer = validated(BulkReviewIn, await json_body(request))
    return await run_in_threadpool(_record_many, session, job_id, answer, reviewer)


def _record_many(session: Session, job_ref: str, answer: BulkReviewIn,
                 reviewer: str) -> BulkReviewOut:
    with session.begin():
        job = resolve_job(session, ref=job_ref)
        if answer.filter is not None:
            ids = image_ids_matching(session, job_id=job.id, where=answer.filter.where(),
                                     limit=MAX_BULK + 1)
            if len(ids) > MAX_BULK:
                raise HTTPException(413, f"the filter matches over {MAX_BULK:,} classified "
                                         "images: narrow it (at most that many at once)")
            if answer.expected is not None and len(ids) != answer.expected:
                raise HTTPException(409, f"the filter now matches {len(ids):,} classified "
                                         f"images, not {answer.expected:,}: look again")
        else:
            ids = answer.image_ids or []
        try:
            answered, below = add_reviews(session, job_id=job.id, image_ids=ids,
                                          digit=answer.digit, unusable=answer.unusable,
                                          reviewer=reviewer)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
    reviewed, total = review_progress(session, job_id=job.id)
    return BulkReviewOut(answered=len(answered), image_ids=answered,
                         digit=None if answer.unusable else answer.digit,
                         unusable=answer.unusable, answered_below_threshold=below,
                         queue_reviewed=reviewed, queue_total=total)
