"""Which of a photo's hands are read (serving.reader.choose_hands): those pointing up, the
surest up to the cap, left to right; those pointing down only when no hand points up."""

from __future__ import annotations

import numpy as np

from signdigits.serving.hands.finder import Hand
from signdigits.serving.hands.landmarks import Landmarks
from signdigits.serving.hands.palm import Region
from signdigits.serving.reader import choose_hands


def _hand(x: float, *, up: bool = True) -> Hand:
    """A hand 40 pixels wide at ``x``, its palm above (or below) its wrist."""
    points = np.zeros((21, 3), np.float32)
    points[:, 0] = np.linspace(x, x + 40, 21)
    points[:, 1] = 100.0
    points[0, 1] = 140.0 if up else 60.0
    return Hand(Landmarks(points, 0.9, 0.5), Region((x + 20, 100), 80.0, 0.0), 0.9)


def test_hands_pointing_down_beside_signing_ones_are_set_aside():
    found = [_hand(300), _hand(100, up=False), _hand(0)]  # surest first
    chosen = choose_hands(found, max_hands=8)
    assert (chosen.read, chosen.set_aside, chosen.pointing_down, chosen.more_hands) == (
        [2, 0], 1, False, False)  # left to right: x = 0, then 300


def test_when_every_hand_points_down_they_are_read_and_said_so():
    chosen = choose_hands([_hand(200, up=False), _hand(0, up=False)], max_hands=8)
    assert (chosen.read, chosen.set_aside, chosen.pointing_down) == ([1, 0], 0, True)


def test_the_cap_counts_every_hand_found_not_only_those_read():
    # The finder returns one more than the cap when the photo holds more: with one of them
    # pointing down, the hands read still fit under the cap, yet others were never found.
    found = [_hand(50 * i, up=i != 3) for i in range(9)]
    chosen = choose_hands(found, max_hands=8)
    assert len(chosen.read) == 8 and chosen.set_aside == 1 and chosen.more_hands
    assert not choose_hands(found[:8], max_hands=8).more_hands


def test_no_hand_is_nothing_read():
    chosen = choose_hands([], max_hands=8)
    assert (chosen.read, chosen.set_aside, chosen.pointing_down, chosen.more_hands) == (
        [], 0, False, False)
