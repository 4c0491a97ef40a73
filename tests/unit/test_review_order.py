"""The review queue's order (db.review_order): lowest confidence first, near-duplicates of
what was already answered, or shown before, after everything new."""

from __future__ import annotations

import math

from signdigits.db.review_order import NEAR, Candidate, hand_shape, review_order


def _hand(scale: float = 1.0, shift: float = 0.0, bend: float = 0.0) -> dict:
    """A stored hand: the wrist at (100, 100), knuckles a palm away, fingertips bent by
    ``bend`` palms; moved and scaled as a photo's pixels would be."""
    points = [(100.0, 100.0)]
    for finger in range(20):
        angle = -math.pi / 2 + (finger // 4 - 2) * 0.3
        reach = 40.0 * (1 + (finger % 4) * 0.3) - (bend * 40 if finger % 4 == 3 else 0)
        points.append((100 + reach * math.cos(angle), 100 + reach * math.sin(angle)))
    return {"hands": [{"landmarks": [[x * scale + shift, y * scale + shift]
                                     for x, y in points]}]}


def test_the_shape_ignores_where_the_hand_is_and_how_big():
    assert hand_shape(_hand()) is not None
    a, b = hand_shape(_hand()), hand_shape(_hand(scale=3.0, shift=250.0))
    assert a is not None and b is not None
    assert math.dist(a, b) < 1e-9
    assert hand_shape(None) is None and hand_shape({"hands": []}) is None


def test_without_near_duplicates_it_is_lowest_confidence_first():
    shapes = [hand_shape(_hand(bend=b)) for b in (0.0, 0.5, 1.0)]
    candidates = [Candidate(1, 0.9, shapes[0]), Candidate(2, 0.3, shapes[1]),
                  Candidate(3, 0.6, shapes[2]), Candidate(4, 0.1, None)]
    # The photo without a hand (confidence 0.1) last: its answer teaches adapt nothing.
    assert review_order(candidates) == [2, 3, 1, 4]


def test_a_bursts_frames_after_everything_new():
    burst = hand_shape(_hand())
    again = hand_shape(_hand(scale=1.01, bend=0.01))  # the next frame
    other = hand_shape(_hand(bend=1.0))
    assert math.dist(burst, again) < NEAR < math.dist(burst, other)
    candidates = [Candidate(1, 0.10, burst), Candidate(2, 0.11, again),
                  Candidate(3, 0.12, burst), Candidate(4, 0.50, other)]
    # Frames 2 and 3 would be the second and third with lowest confidence first.
    assert review_order(candidates) == [1, 4, 2, 3]


def test_a_photo_like_one_already_reviewed_waits():
    burst, other = hand_shape(_hand()), hand_shape(_hand(bend=1.0))
    candidates = [Candidate(1, 0.1, burst), Candidate(2, 0.9, other)]
    assert review_order(candidates, reviewed=[burst]) == [2, 1]
    assert review_order(candidates, reviewed=[other]) == [1, 2]


def test_every_fifth_is_a_spot_check_the_hand_least_like_those_seen():
    from signdigits.db.review_order import with_spot_checks

    queue = [Candidate(i, 0.1 * i, hand_shape(_hand(scale=1 + i / 100))) for i in range(1, 10)]
    sure = [Candidate(20, 0.96, hand_shape(_hand(bend=0.6))),
            Candidate(21, 0.99, hand_shape(_hand(bend=1.5))),
            Candidate(22, 0.95, hand_shape(_hand(bend=0.02)))]
    # The queued hands are all straight. Fifth: the confident hand farthest from them (21,
    # though 20 is less sure); tenth: 20, unlike every hand shown; 22, like the queued
    # hands, is never a spot check.
    assert with_spot_checks(queue, sure, every=5) == [
        (1, False), (2, False), (3, False), (4, False), (21, True), (5, False), (6, False),
        (7, False), (8, False), (20, True), (9, False)]


def test_spot_checks_count_the_photos_shown_before_and_skip_what_was_reviewed():
    from signdigits.db.review_order import with_spot_checks

    a, b, c = (hand_shape(_hand(bend=x)) for x in (0.0, 0.5, 1.6))
    queue = [Candidate(i, 0.1, None) for i in (1, 2, 3)]
    sure = [Candidate(11, 0.99, a), Candidate(12, 0.97, b), Candidate(13, 0.98, c),
            Candidate(14, 0.96, None)]
    # Three photos shown already: the second place is the fifth. Nothing seen has a
    # hand: the least confident with one is the first spot check.
    assert with_spot_checks(queue, sure, start=3) == [(1, False), (12, True), (2, False),
                                                      (3, False)]
    assert with_spot_checks(queue, sure, start=3, reviewed=[b]) == [
        (1, False), (13, True), (2, False), (3, False)]
    assert with_spot_checks(queue, sure, start=3, reviewed=[a, b, c]) == [
        (1, False), (2, False), (3, False)]
    # No queue, no spot check: they come between the uncertain photos only.
    assert with_spot_checks([], sure) == []
    assert with_spot_checks(queue, []) == [(1, False), (2, False), (3, False)]
