"""Which uncertain photo a person sees next: a label is worth most on a photo unlike those
already answered.

Lowest confidence first, as before, with one change: a photo whose hand has nearly the
shape of one already reviewed, or of one shown earlier in this order, goes after every
photo that has not. Frames of one burst (a webcam's video, a phone's burst mode) are
near-duplicates: the first of them to be answered teaches what the others would, so the
person moves on to what the model has not been shown yet, and comes back to the rest
only when nothing new is left.

The shape is the hand's 21 landmarks as stored (``images.hand``), moved to the wrist
and divided by the palm's size (the same normalisation as the classifier's features,
in two dimensions). :data:`NEAR` was measured on the foreign photos ``modi``: between
consecutive frames of one burst the distance is 0.06 / 0.09 / 0.24 (10th, 50th and 90th
percentile), between the first and last frame of a digit's burst 0.13 to 0.66.
A photo with no hand has no shape and comes last: its confidence is 0, so it led the
queue, yet its answer teaches ``adapt`` nothing (there is no hand to learn from). On a
dim, low-resolution copy of ``modi`` (``bench.drift --kind webcam``) the first 25
reviews were all such photos, and adapting on them changed nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

NEAR = 0.2
_WRIST, _KNUCKLES = 0, (5, 9, 13, 17)


@dataclass(frozen=True)
class Candidate:
    id: int
    confidence: float
    shape: tuple[float, ...] | None  # hand_shape() of its first hand, or None


def hand_shape(hand: dict | None) -> tuple[float, ...] | None:
    """The first hand's landmarks (``images.hand``), wrist at 0, palm size 1; None without."""
    hands = (hand or {}).get("hands") or []
    points = hands[0].get("landmarks") if hands else None
    if not points or len(points) != 21:
        return None
    wx, wy = points[_WRIST]
    palm = sum(math.dist(points[k], (wx, wy)) for k in _KNUCKLES) / len(_KNUCKLES)
    if palm <= 0:
        return None
    return tuple(v for x, y in points for v in ((x - wx) / palm, (y - wy) / palm))


def review_order(candidates: Sequence[Candidate], *, reviewed: Sequence[tuple[float, ...]] = (),
                 near: float = NEAR) -> list[int]:
    """The candidates' ids in the order a person should see them (see the module's text):
    first every photo unlike the reviewed ones and unlike those before it, lowest
    confidence first; then the near-duplicates, lowest confidence first; then the photos
    without a hand. Ties by id."""
    import numpy as np

    ordered = sorted(candidates, key=lambda c: (c.confidence, c.id))
    kept: list[tuple[float, ...]] = [s for s in reviewed if s is not None]
    first, later, no_hand = [], [], []
    known = np.asarray(kept, np.float64).reshape(len(kept), -1) if kept else None
    for candidate in ordered:
        shape = candidate.shape
        if shape is None:
            no_hand.append(candidate.id)
            continue
        point = np.asarray(shape, np.float64)
        if known is not None and len(known) and known.shape[1] == len(point) and float(
                np.min(np.linalg.norm(known - point, axis=1))) < near:
            later.append(candidate.id)
            continue
        first.append(candidate.id)
        known = point[None] if known is None or not len(known) else np.vstack([known, point])
    return first + later + no_hand


SPOT_EVERY = 5  # with spot checks, every 5th photo shown is one

# Spot checks are measured (bench.adapt_loop --order spot), not served: on degraded copies
# of the foreign photos they did not make adapting better than the queue above, so the
# review queue (db.reviews.review_queue) shows below-threshold photos only. See
# docs/reviewing.md#spot-checks-above-the-threshold.


def with_spot_checks(queue: Sequence[Candidate], sure: Sequence[Candidate], *,
                     reviewed: Sequence[tuple[float, ...]] = (), start: int = 0,
                     every: int = SPOT_EVERY, near: float = NEAR) -> list[tuple[int, bool]]:
    """``queue`` (below-threshold, in :func:`review_order`'s order) with a spot check in
    every ``every``-th place (counted from ``start``, the photos shown before): of
    ``sure`` (the photos at or above the threshold), the one whose hand is farthest from
    every reviewed hand and every hand shown before it. A confident answer can be wrong,
    and a queue of uncertain photos never shows one; a hand unlike anything answered is
    where the model's confidence says least. Only a hand at least ``near`` from all of
    those is a spot check, and only between queue photos: when the queue is done, so are
    they. (id, is a spot check) in order; ties by lower confidence, then id."""
    import numpy as np

    pool = sorted((c for c in sure if c.shape is not None), key=lambda c: (c.confidence, c.id))
    points = np.asarray([c.shape for c in pool] or np.zeros((0, 0)), np.float64)
    gap = np.full(len(pool), np.inf)  # each sure hand's distance to the nearest one seen
    taken = np.zeros(len(pool), bool)

    def seen(shape: tuple[float, ...] | None) -> None:
        if shape is not None and len(pool) and len(shape) == points.shape[1]:
            np.minimum(gap, np.linalg.norm(points - np.asarray(shape), axis=1), out=gap)

    def spot_check() -> int | None:
        free = np.where(taken, -1.0, gap)
        if not len(pool) or free.max() < near:
            return None
        best = int(np.argmax(free))  # the first of equals: the least confident
        taken[best] = True
        seen(pool[best].shape)
        return pool[best].id

    for shape in reviewed:
        seen(shape)
    order: list[tuple[int, bool]] = []
    for candidate in queue:
        if (start + len(order)) % every == every - 1:
            spot = spot_check()
            if spot is not None:
                order.append((spot, True))
        seen(candidate.shape)
        order.append((candidate.id, False))
    return order
