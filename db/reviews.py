"""The review queue and the reviews: what is left to look at, answers, their history.

An image's current answer is its newest ``reviews`` row (highest id); earlier rows stay
as its history. Every query here that needs the current answer finds it through the
``(image_id, id)`` index, one lookup per image.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import and_, exists, func, insert, select
from sqlalchemy.orm import Session, aliased

from signdigits.db.models import Image, ImageStatus, Job, Review
from signdigits.db.review_order import Candidate, hand_shape, review_order

MAX_REVIEWER = 255
QUEUE_CANDIDATES = 2000  # the least confident unreviewed images the order is chosen among
CHUNK = 5000


class NotReviewable(ValueError):
    """The image has no classification to review (an error, pending or cancelled row)."""


def _newest_review_id():
    later = aliased(Review)
    return (select(func.max(later.id)).where(later.image_id == Image.id)
            .correlate(Image).scalar_subquery())


def with_current_review(query):
    """``query`` (selecting ``Image``) outer-joined to each image's current review."""
    return query.add_columns(Review).outerjoin(
        Review, and_(Review.image_id == Image.id, Review.id == _newest_review_id()))


def current_reviews(session: Session, *, image_ids: Sequence[int]) -> dict[int, Review]:
    """image id -> its current review, for the images of one page."""
    if not image_ids:
        return {}
    found: dict[int, Review] = {}
    rows = session.scalars(select(Review).where(Review.image_id.in_(list(image_ids)))
                           .order_by(Review.id))
    for review in rows:
        found[review.image_id] = review  # the last one (highest id) stays
    return found


def _reviewable(job_id: str):
    return (Image.job_id == job_id, Image.status == ImageStatus.DONE,
            Image.below_threshold.is_(True))


def review_queue(session: Session, *, job_id: str, limit: int,
                 skip: Iterable[int] = ()) -> list[Image]:
    """The job's below-threshold, classified images nobody has reviewed, in the order of
    db.review_order: lowest confidence first, near-duplicates of a reviewed photo (or of
    one before it) after the rest, photos without a hand last (errors have no confidence
    and are never in the queue).

    The order is chosen among the :data:`QUEUE_CANDIDATES` least confident, against the
    shapes of the job's reviewed photos (as many at most)."""
    reviewed = exists().where(Review.image_id == Image.id)
    query = select(Image.id, Image.confidence, Image.hand).where(*_reviewable(job_id), ~reviewed)
    skip = list(skip)
    if skip:
        query = query.where(Image.id.not_in(skip))
    rows = session.execute(query.order_by(Image.confidence, Image.id)
                           .limit(QUEUE_CANDIDATES)).all()
    answered = session.scalars(select(Image.hand).where(Image.job_id == job_id, reviewed)
                               .limit(QUEUE_CANDIDATES))
    order = review_order([Candidate(i, c or 0.0, hand_shape(h)) for i, c, h in rows],
                         reviewed=[s for s in map(hand_shape, answered) if s is not None])
    order = order[:limit]
    images = {image.id: image for image in session.scalars(
        select(Image).where(Image.id.in_(order)))} if order else {}
    return [images[i] for i in order]


def review_progress(session: Session, *, job_id: str) -> tuple[int, int]:
    """(reviewed, to review): the job's below-threshold images with an answer, and all."""
    reviewed = exists().where(Review.image_id == Image.id)
    total = session.scalar(select(func.count()).select_from(Image).where(*_reviewable(job_id)))
    done = session.scalar(select(func.count()).select_from(Image)
                          .where(*_reviewable(job_id), reviewed))
    return int(done or 0), int(total or 0)


def reviewed_counts(session: Session, *, job_ids: Sequence[str]) -> dict[str, int]:
    """Per job of ``job_ids``: its below-threshold images with a review (the jobs list's
    "reviewed / below threshold"), in one query; a job without any is left out."""
    if not job_ids:
        return {}
    reviewed = exists().where(Review.image_id == Image.id)
    rows = session.execute(
        select(Image.job_id, func.count()).where(
            Image.job_id.in_(list(job_ids)), Image.status == ImageStatus.DONE,
            Image.below_threshold.is_(True), reviewed).group_by(Image.job_id))
    return {job_id: int(count) for job_id, count in rows}


def add_review(session: Session, *, image: Image, digit: int | None, unusable: bool,
               reviewer: str) -> Review:
    """Record a new answer for ``image`` (the caller commits). Raises NotReviewable."""
    _check_reviewable(image)
    if digit is None and not unusable:
        raise NotReviewable(f"image {image.id}: a review is a digit 0-9 or unusable")
    review = Review(image_id=image.id, digit=None if unusable else digit, unusable=unusable,
                    reviewer=reviewer[:MAX_REVIEWER])
    session.add(review)
    session.flush()
    return review


def add_hand_review(session: Session, *, image: Image, hand: int, digit: int | None,
                    reviewer: str) -> Review:
    """Correct one hand of a photo (``digit`` None: it is not a hand); the new row holds
    the photo's whole answer after it. Raises NotReviewable."""
    _check_reviewable(image)
    count = image.hand_count or 0
    if not 0 <= hand < count:
        raise NotReviewable(f"image {image.id} has {count} hand{'s' * (count != 1)}: "
                            f"no hand {hand} (hands count from 0, left to right)")
    newest = session.scalars(select(Review).where(Review.image_id == image.id)
                             .order_by(Review.id.desc()).limit(1)).first()
    answers = hand_answers(image, newest)
    answers[hand] = digit
    return _add_hands(session, image=image, answers=answers, reviewer=reviewer)


def add_hands_review(session: Session, *, image: Image, digits: Sequence[int | None],
                     reviewer: str) -> Review:
    """Answer every hand of a photo at once, left to right (None: not a hand): one new
    row, as :func:`add_hand_review` would leave after one call per hand. Raises
    NotReviewable."""
    _check_reviewable(image)
    count = image.hand_count or 0
    if len(digits) != count or count < 2:
        raise NotReviewable(f"image {image.id} has {count} hand{'s' * (count != 1)}: "
                            f"{len(digits)} answers given")
    return _add_hands(session, image=image, answers=list(digits), reviewer=reviewer)


def _add_hands(session: Session, *, image: Image, answers: list[int | None],
               reviewer: str) -> Review:
    left = [d for d in answers if d is not None]
    review = Review(image_id=image.id, digit=left[0] if len(left) == 1 else None,
                    unusable=not left, reviewer=reviewer[:MAX_REVIEWER], hand_digits=answers)
    session.add(review)
    session.flush()
    return review


def add_reviews(session: Session, *, job_id: str, image_ids: Sequence[int], digit: int | None,
                unusable: bool, reviewer: str) -> tuple[list[int], int]:
    """One new review row per image, all with the same answer (the caller commits: one
    transaction). Every image must be one of the job's classified rows: otherwise
    NotReviewable (or LookupError for an id the job does not have), and nothing is added.
    Returns the ids answered (each once, in order) and how many of them were below the
    threshold (the review queue's images)."""
    ids = sorted(set(image_ids))
    found: dict[int, str] = {}
    below = 0
    for start in range(0, len(ids), CHUNK):  # SQLite takes at most 32,766 bound values
        rows = session.execute(select(Image.id, Image.status, Image.below_threshold).where(
            Image.job_id == job_id, Image.id.in_(ids[start:start + CHUNK])))
        for image_id, status, flagged in rows:
            found[image_id] = status
            below += bool(flagged)
    missing = [i for i in ids if i not in found]
    if missing:
        raise LookupError(f"image {missing[0]} is not in job {job_id}"
                          + (f" (nor {len(missing) - 1} more)" if len(missing) > 1 else ""))
    unread = [i for i in ids if found[i] != ImageStatus.DONE]
    if unread:
        raise NotReviewable(f"image {unread[0]} has no classification to review "
                            f"({found[unread[0]]})"
                            + (f", nor {len(unread) - 1} more" if len(unread) > 1 else ""))
    if ids:
        session.execute(insert(Review), [
            {"image_id": i, "digit": None if unusable else digit, "unusable": unusable,
             "reviewer": reviewer[:MAX_REVIEWER]} for i in ids])
    return ids, below


def review_changes(session: Session, *, job_id: str) -> list[tuple[int | None, int | None,
                                                                   Review]]:
    """(model digit, hand count, current review) of each of the job's reviewed images."""
    query = (select(Image.digit, Image.hand_count, Review).select_from(Image)
             .join(Review, and_(Review.image_id == Image.id, Review.id == _newest_review_id()))
             .where(Image.job_id == job_id, Image.status == ImageStatus.DONE))
    return [(d, n, r) for d, n, r in session.execute(query)]


def hand_answers(image: Image, review: Review | None) -> list[int | None]:
    """Each hand's answer now: the current review's, hand by hand, where it reviewed the
    hands; else the model's (a review of the photo as a whole is replaced)."""
    model = [hand.get("digit") for hand in ((image.hand or {}).get("hands") or [])]
    if review is not None and review.hand_digits is not None and \
            len(review.hand_digits) == len(model):
        return list(review.hand_digits)
    return model


def _check_reviewable(image: Image) -> None:
    if image.status != ImageStatus.DONE:
        why = f"error: {image.error}" if image.status == ImageStatus.ERROR else image.status
        raise NotReviewable(f"image {image.id} has no classification to review ({why})")


def review_history(session: Session, *, image_id: int) -> list[Review]:
    return list(session.scalars(select(Review).where(Review.image_id == image_id)
                                .order_by(Review.id)))


def reviewed_images(session: Session, *, job_ids: Sequence[str]
                    ) -> Iterator[tuple[Image, Job, Review]]:
    """Every image of these jobs whose current answer is a digit (not unusable)."""
    query = (select(Image, Job, Review).select_from(Image)
             .join(Job, Job.id == Image.job_id)
             .join(Review, and_(Review.image_id == Image.id, Review.id == _newest_review_id()))
             .where(Image.job_id.in_(list(job_ids)), Review.unusable.is_(False)))
    for row in session.execute(
            query.order_by(Image.job_id, Image.path).execution_options(yield_per=2000)):
        yield row[0], row[1], row[2]
