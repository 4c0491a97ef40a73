"""Several hands are read as a person reads them: left to right, rows top to bottom."""

from __future__ import annotations

import pytest

from signdigits.serving.hands.order import reading_order


@pytest.mark.parametrize(("boxes", "order"), [
    ([], []),
    ([(0, 0, 10, 10)], [0]),
    # side by side, given right to left
    ([(200, 0, 260, 100), (100, 0, 160, 100), (0, 0, 60, 100)], [2, 1, 0]),
    # side by side at different heights (people of different sizes): still one row
    ([(100, 40, 160, 140), (0, 0, 60, 100), (200, 70, 260, 170)], [1, 0, 2]),
    # a collage of two rows, given bottom-right first
    ([(100, 120, 160, 220), (0, 0, 60, 100), (0, 120, 60, 220), (100, 0, 160, 100)],
     [1, 3, 2, 0]),
    # one hand held under another: top to bottom
    ([(0, 150, 60, 250), (10, 0, 70, 100)], [1, 0]),
    # side by side, one high and one low, not sharing a single line of pixels
    ([(591, 55, 690, 203), (106, 228, 227, 408), (1069, 173, 1167, 349)], [1, 0, 2]),
    # two people's hands touching (their boxes overlap a little), at different heights
    ([(50, 40, 110, 140), (0, 0, 60, 100)], [1, 0]),
])
def test_reading_order(boxes, order):
    assert reading_order(boxes) == order
