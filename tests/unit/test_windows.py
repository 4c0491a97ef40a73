"""The palm detector's windows along a long picture (serving.hands.finder.windows)."""

from __future__ import annotations

import itertools

import pytest

from signdigits.serving.hands.finder import MAX_WINDOW_ASPECT, MAX_WINDOWS, windows


@pytest.mark.parametrize("size", [(640, 480), (1000, 500), (8000, 600), (6000, 2),
                                  (600, 8000), (50000, 40), (1601, 100)])
def test_windows_cover_the_picture_overlapping_and_are_never_too_many(size):
    boxes = windows(size)
    long_axis = 0 if size[0] >= size[1] else 1
    short, long = min(size), max(size)
    assert 1 <= len(boxes) <= MAX_WINDOWS
    assert boxes[0][long_axis] == 0 and boxes[-1][long_axis + 2] == long
    for box in boxes:
        assert box[1 - long_axis] == 0 and box[3 - long_axis] == short  # the whole short side
        assert box[long_axis + 2] - box[long_axis] >= min(short, long)  # never narrower
    for before, after in itertools.pairwise(boxes):
        span = before[long_axis + 2] - before[long_axis]
        # Overlapping by a quarter (to a pixel's rounding): a hand on a seam is whole in one.
        assert before[long_axis + 2] - after[long_axis] >= span / 4 - 1


def test_a_photo_up_to_3_to_2_is_one_window_and_a_longer_one_squares():
    assert windows((int(480 * MAX_WINDOW_ASPECT), 480)) == [(0, 0, 720, 480)]
    assert {(x1 - x0, y1 - y0) for x0, y0, x1, y1 in windows((1000, 500))} == {(500, 500)}
