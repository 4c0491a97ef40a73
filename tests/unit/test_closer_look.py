"""The rule for a second, closer decode of a photo (serving.reader.look)."""

from __future__ import annotations

import pytest

from signdigits.serving.reader import SMALL_HAND_SIDE, closer_is_kept, needs_closer


def test_no_hand_calls_for_a_closer_look():
    assert needs_closer([])


@pytest.mark.parametrize(("side", "closer"), [(SMALL_HAND_SIDE - 0.5, True),
                                              (SMALL_HAND_SIDE, False), (80, False)])
def test_a_hand_under_the_smallest_side_calls_for_one(side, closer):
    assert needs_closer([(10, 10, 10 + side, 10 + side / 2)]) is closer


def test_the_smallest_of_several_hands_decides():
    assert needs_closer([(0, 0, 100, 100), (200, 200, 210, 212)])
    assert not needs_closer([(0, 0, 100, 100), (200, 200, 230, 220)])


def test_boxes_in_the_photos_own_pixels_are_scaled_to_the_decoded_ones():
    # 60 original pixels at a quarter: 15 decoded pixels, under the side.
    assert needs_closer([(0, 0, 60, 40)], scale=0.25)
    assert not needs_closer([(0, 0, 60, 40)], scale=0.5)


@pytest.mark.parametrize(("first", "closer", "kept"), [(0, 1, True), (1, 1, True),
                                                       (2, 3, True), (2, 1, False),
                                                       (1, 0, False), (0, 0, True)])
def test_the_closer_hands_are_kept_unless_fewer(first, closer, kept):
    assert closer_is_kept(first, closer) is kept
