"""The rule for a second, closer decode of a photo (serving.reader.look_again)."""

from __future__ import annotations

import pytest

from signdigits.serving.reader import (
    CLOSE_HAND_SIDE,
    SMALL_HAND_SIDE,
    Closer,
    closer_is_kept,
    closer_step,
)


def test_no_hand_calls_for_a_closer_search():
    assert closer_step([]) is Closer.SEARCH


@pytest.mark.parametrize(("side", "step"), [(SMALL_HAND_SIDE - 0.5, Closer.SEARCH),
                                            (SMALL_HAND_SIDE, Closer.PLACE),
                                            (CLOSE_HAND_SIDE - 0.5, Closer.PLACE),
                                            (CLOSE_HAND_SIDE, None), (80, None)])
def test_a_tiny_hand_is_searched_for_again_and_a_small_one_placed_again(side, step):
    # The box's longer side decides, whichever way the hand lies.
    assert closer_step([(10, 10, 10 + side, 10 + side / 2)]) is step
    assert closer_step([(10, 10, 10 + side / 2, 10 + side)]) is step


def test_the_smallest_of_several_hands_decides():
    assert closer_step([(0, 0, 100, 100), (200, 200, 210, 212)]) is Closer.SEARCH
    assert closer_step([(0, 0, 100, 100), (200, 200, 230, 220)]) is Closer.PLACE
    assert closer_step([(0, 0, 100, 100), (200, 200, 270, 220)]) is None


def test_boxes_in_the_photos_own_pixels_are_scaled_to_the_decoded_ones():
    # 120 original pixels: 15 decoded at an eighth, 30 at a quarter, 120 whole.
    assert closer_step([(0, 0, 120, 40)], scale=0.125) is Closer.SEARCH
    assert closer_step([(0, 0, 120, 40)], scale=0.25) is Closer.PLACE
    assert closer_step([(0, 0, 120, 40)], scale=1.0) is None


@pytest.mark.parametrize(("first", "closer", "kept"), [(0, 1, True), (1, 1, True),
                                                       (2, 3, True), (2, 1, False),
                                                       (1, 0, False), (0, 0, True)])
def test_the_closer_hands_are_kept_unless_fewer(first, closer, kept):
    assert closer_is_kept(first, closer) is kept
