"""The rule for a second, closer decode of a photo (serving.reader.look_again)."""

from __future__ import annotations

import pytest

from signdigits.serving.hands.finder import TILE_GRIDS
from signdigits.serving.reader import (
    CLOSE_HAND_SIDE,
    CLOSER_GRIDS,
    FIRST_LOOK_GRIDS,
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


class _Finder:
    """Records how it was asked to search; finds no hand."""

    def __init__(self) -> None:
        self.searches: list[tuple[tuple[int, int], object]] = []

    def find(self, image, *, grids=None):
        self.searches.append((image.size, grids))
        return []

    def place_closer(self, image, hand, factor):  # pragma: no cover - no hand to place
        raise AssertionError("nothing to place")


def _png(size: tuple[int, int]) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (90, 140, 200)).save(out, "PNG")
    return out.getvalue()


def test_a_reduced_decode_leaves_the_finest_tiles_to_the_closer_one():
    from signdigits.serving.reader import look

    finder = _Finder()
    photo, hands = look(finder, _png((1280, 960)))
    assert hands == [] and photo.image.size == (1280, 960)
    assert finder.searches == [((320, 240), FIRST_LOOK_GRIDS), ((1280, 960), CLOSER_GRIDS)]
    # Between them every grid, each once; the finest on the closer decode.
    assert sorted(FIRST_LOOK_GRIDS + CLOSER_GRIDS) == sorted(TILE_GRIDS)
    assert max(TILE_GRIDS) in CLOSER_GRIDS and max(TILE_GRIDS) not in FIRST_LOOK_GRIDS


def test_a_photo_with_no_more_pixels_to_give_is_searched_in_every_grid_at_once_or_after():
    from PIL import Image

    from signdigits.serving.photo import Photo
    from signdigits.serving.reader import first_look, look, look_again

    finder = _Finder()
    look(finder, _png((320, 240)))  # decoded whole: no closer look to leave the tiles to
    assert finder.searches == [((320, 240), None)]
    # Reduced, but the closer decode would be no larger: the grids left are searched here.
    finder = _Finder()
    small = Photo(Image.new("RGB", (320, 240)), (1280, 960))
    look_again(finder, _png((320, 240)), small, first_look(finder, small), max_pixels=10**8)
    assert finder.searches == [((320, 240), FIRST_LOOK_GRIDS), ((320, 240), CLOSER_GRIDS)]


class _Speck:
    """A hand 10 pixels wide: small enough to call for a closer search."""

    box = (100.0, 100.0, 110.0, 110.0)


def test_a_hand_the_search_on_the_same_picture_loses_is_kept_as_a_closer_decode_keeps_it():
    """No more pixels to give, and the grids left on the same picture find nothing: the tiny
    hand the first look found stays, as serving.reader.closer_is_kept keeps it on a closer
    decode and the web keeps it (web/routes/predict.py)."""
    from PIL import Image

    from signdigits.serving.photo import Photo
    from signdigits.serving.reader import look_again

    finder = _Finder()
    small = Photo(Image.new("RGB", (320, 240)), (1280, 960))
    speck = _Speck()
    photo, hands = look_again(finder, _png((320, 240)), small, [speck], max_pixels=10**8)
    assert finder.searches == [((320, 240), CLOSER_GRIDS)]
    assert photo is small and hands == [speck]
