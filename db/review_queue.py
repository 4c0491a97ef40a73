"""The review page's queue: the uncertain photos in db.review_order's order, with a spot
check (a confident photo unlike anything reviewed) in every fifth place.

Measured on degraded copies of the foreign photos (docs/reviewing.md): a queue of
below-threshold photos never shows a confident wrong answer, and adapting on those alone
left them wrong; the spot checks showed some and the adapted model fixed more of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from signdigits.db.models import Image, ImageStatus, Review
from signdigits.db.review_order import Candidate, hand_shape, review_order, with_spot_checks
from signdigits.db.reviews import QUEUE_CANDIDATES


def spot_checked_queue(session: Session, *, job_id: str, limit: int,
                       skip: Iterable[int] = ()) -> list[tuple[Image, bool]]:
    """The job's unreviewed photos to show next, (image, is a spot check) each: the
    below-threshold ones as db.reviews.review_queue orders them, and in every
    db.review_order.SPOT_EVERY-th place (counting the job's reviewed photos and ``skip``,
    those already shown) the confident one least like every reviewed or shown hand.

    Each kind is chosen among its :data:`QUEUE_CANDIDATES` least confident photos."""
    skip = list(skip)
    reviewed = exists().where(Review.image_id == Image.id)
    waiting = [Image.job_id == job_id, Image.status == ImageStatus.DONE, ~reviewed]
    if skip:
        waiting.append(Image.id.not_in(skip))

    def candidates(*where) -> list[Candidate]:
        rows = session.execute(select(Image.id, Image.confidence, Image.hand)
                               .where(*waiting, *where).order_by(Image.confidence, Image.id)
                               .limit(QUEUE_CANDIDATES)).all()
        return [Candidate(i, c or 0.0, hand_shape(h)) for i, c, h in rows]

    below = candidates(Image.below_threshold.is_(True))
    sure = candidates(Image.below_threshold.is_(False))
    answered = [s for s in map(hand_shape, session.scalars(
        select(Image.hand).where(Image.job_id == job_id, reviewed).limit(QUEUE_CANDIDATES)))
                if s is not None]
    shown = [s for s in map(hand_shape, session.scalars(
        select(Image.hand).where(Image.id.in_(skip)))) if s is not None] if skip else []
    done = session.scalar(select(func.count()).select_from(Image)
                          .where(Image.job_id == job_id, reviewed)) or 0
    by_id = {c.id: c for c in below}
    order = with_spot_checks([by_id[i] for i in review_order(below, reviewed=answered)],
                             sure, reviewed=answered + shown, start=int(done) + len(skip))
    order = order[:limit]
    images = {image.id: image for image in session.scalars(
        select(Image).where(Image.id.in_([i for i, _ in order])))} if order else {}
    return [(images[i], spot) for i, spot in order]


def spot_checks_reviewed(session: Session, *, job_id: str) -> int:
    """The job's photos at or above its threshold that a person has answered."""
    reviewed = exists().where(Review.image_id == Image.id)
    return int(session.scalar(select(func.count()).select_from(Image).where(
        Image.job_id == job_id, Image.status == ImageStatus.DONE,
        Image.below_threshold.is_(False), reviewed)) or 0)
