"""The review queue: ``GET /api/jobs/{id}/review`` and ``POST /api/images/{id}/review``.

The reviewer is whoever the request authenticated as (:func:`web.auth.request_user`),
never a name the client sends. A later review of an image is a new row: the current
answer changes, the earlier one stays in the history.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request

from signdigits.db.models import Image, as_utc
from signdigits.db.reviews import (
    NotReviewable,
    add_review,
    review_history,
    review_progress,
    review_queue,
)
from signdigits.web.auth import request_user
from signdigits.web.limits import MAX_ID, ImageId, json_body
from signdigits.web.state import image_json, web_state

router = APIRouter(tags=["reviews"])


def review_json(review) -> dict:
    return {"id": review.id, "image_id": review.image_id, "digit": review.digit,
            "unusable": review.unusable, "reviewer": review.reviewer,
            "reviewed_at": as_utc(review.reviewed_at).isoformat()}


@router.get("/api/jobs/{job_id}/review",
            summary="The next unreviewed below-threshold images, lowest confidence first")
def queue(request: Request, job_id: str, limit: int = Query(20, ge=1, le=500),
          skip: str = Query("", description="comma-separated image ids already shown")
          ) -> dict:
    state = web_state(request)
    try:
        skipped = [int(x) for x in skip.split(",") if x.strip()][:1000]
        if not all(0 <= x <= MAX_ID for x in skipped):
            raise ValueError
    except ValueError:
        raise HTTPException(422, "skip must be comma-separated image ids") from None
    with state.sessions() as session:
        job = state.summary(session, job_id).job
        rows = review_queue(session, job_id=job.id, limit=limit, skip=skipped)
        reviewed, total = review_progress(session, job_id=job.id)
    return {"job": job.id, "threshold": job.threshold, "reviewed": reviewed, "total": total,
            "items": [image_json(r) for r in rows]}


def _answer(body) -> tuple[int | None, bool]:
    if not isinstance(body, dict):
        raise HTTPException(422, 'send {"digit": 0-9} or {"unusable": true}')
    unusable = body.get("unusable", False)
    digit = body.get("digit")
    if not isinstance(unusable, bool):
        raise HTTPException(422, "unusable must be true or false")
    if unusable:
        if digit is not None:
            raise HTTPException(422, "send a digit or unusable, not both")
        return None, True
    if digit is None:
        raise HTTPException(422, 'send {"digit": 0-9} or {"unusable": true}')
    if isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit <= 9:
        raise HTTPException(422, f"digit must be an integer from 0 to 9 (got {digit!r})")
    return digit, False


@router.post("/api/images/{image_id}/review",
             summary='Record a review: {"digit": 7} or {"unusable": true}')
async def post_review(request: Request, image_id: int = ImageId) -> dict:
    body = await json_body(request)
    digit, unusable = _answer(body)
    state = web_state(request)
    with state.sessions.begin() as session:
        image = session.get(Image, image_id, with_for_update=True)
        if image is None:
            raise HTTPException(404, f"no image {image_id}")
        try:
            review = add_review(session, image=image, digit=digit, unusable=unusable,
                                reviewer=request_user(request))
        except NotReviewable as exc:
            raise HTTPException(409, str(exc)) from None
        stored = review_json(review)
        job_id = image.job_id
    with state.sessions() as session:
        reviewed, total = review_progress(session, job_id=job_id)
    return {**stored, "reviewed": reviewed, "total": total}


@router.get("/api/images/{image_id}/reviews", summary="Every review of an image, oldest first")
def history(request: Request, image_id: int = ImageId) -> dict:
    state = web_state(request)
    with state.sessions() as session:
        if session.get(Image, image_id) is None:
            raise HTTPException(404, f"no image {image_id}")
        return {"items": [review_json(r) for r in review_history(session, image_id=image_id)]}
