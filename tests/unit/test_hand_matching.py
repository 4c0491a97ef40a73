"""``training/job_photos.matched_hands``: which hand found again a stored hand's answer is
for, and when that cannot be told (then no example, never a guess)."""

from __future__ import annotations

import numpy as np

from signdigits.serving.hands.finder import Hand
from signdigits.serving.hands.landmarks import Landmarks
from signdigits.serving.hands.palm import Region
from signdigits.training.job_photos import matched_hands

# Three people side by side, in the photo's own pixels (reading order), as a worker stored them.
STORED = [{"box": [160, 40, 420, 390]}, {"box": [830, 145, 960, 350]},
          {"box": [1420, 40, 1730, 430]}]


def _found(*boxes: tuple[float, float, float, float], scale: float = 0.5) -> list[Hand]:
    """Upright hands found on the decoded copy (``scale`` of the photo's pixels): points
    from the wrist at the box's bottom to the fingertips at its top."""
    hands = []
    for box in boxes:
        x0, y0, x1, y1 = (v * scale for v in box)
        points = np.zeros((21, 3), np.float32)
        points[:, 0], points[:, 1] = np.linspace(x0, x1, 21), np.linspace(y1, y0, 21)
        hands.append(Hand(Landmarks(points, 0.9, 0.5), Region((0.0, 0.0), 1.0, 0.0), 0.9))
    return hands


def test_the_hands_found_again_are_matched_in_reading_order_on_the_photos_pixels():
    surest_first = _found((1421, 37, 1732, 429), (163, 43, 423, 392), (827, 145, 960, 348))
    assert matched_hands(STORED, surest_first, scale=0.5) == [
        surest_first[1], surest_first[2], surest_first[0]]


def test_hands_found_elsewhere_or_one_more_or_less_are_not_matched():
    moved = _found((800, 44, 1062, 393), (1465, 145, 1601, 344), (2061, 37, 2373, 429))
    assert matched_hands(STORED, moved, scale=0.5) == [None, None, None]
    fourth = _found((163, 43, 423, 392), (827, 145, 960, 348), (1421, 37, 1732, 429),
                    (1800, 40, 1900, 200))
    assert matched_hands(STORED, fourth, scale=0.5) == [None, None, None]
    assert matched_hands(STORED, fourth[:2], scale=0.5) == [None, None, None]
    # The workers read the surest max_hands and stored those: so are they found again.
    assert matched_hands(STORED, fourth, scale=0.5, max_hands=3) == fourth[:3]


def test_touching_hands_whose_boxes_agree_with_both_are_left_out():
    stored = [{"box": [100, 100, 300, 300]}, {"box": [180, 120, 380, 320]},
              {"box": [900, 100, 1000, 200]}]
    found = _found((100, 100, 300, 300), (180, 120, 380, 320), (900, 100, 1000, 200), scale=1)
    assert matched_hands(stored, found, scale=1.0) == [None, None, found[2]]


def test_a_stored_hand_without_its_box_matches_nothing():
    found = _found((163, 43, 423, 392))
    assert matched_hands([{"landmarks": []}], found, scale=0.5) == [None]


def test_a_hand_the_workers_set_aside_as_pointing_down_is_set_aside_again():
    upright, resting = _found((160, 40, 420, 390), (830, 145, 960, 350))
    resting.landmarks.points[:, 1] = resting.landmarks.points[::-1, 1]  # wrist at the top
    assert matched_hands(STORED[:1], [resting, upright], scale=0.5) == [upright]
