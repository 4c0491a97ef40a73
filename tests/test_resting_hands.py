"""Hands pointing down are not signing: the reader sets them aside beside hands pointing up,
and reads a photo whose only hands point down below any threshold.

Real foreign close-ups (``../shared/datasets/foreign-photos/cyril``), one turned as a
resting hand is held, beside an upright one; read with the shipped model and the pinned
hand models, as a worker reads them.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.conftest import DATASET, require

CYRIL = DATASET.parent / "foreign-photos" / "cyril"


@pytest.fixture(scope="module")
def reader():
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.hands.models import default_models_dir
    from signdigits.serving.reader import HandReader

    require((CYRIL / "3").is_dir(), f"foreign photos not found at {CYRIL}")
    return HandReader.from_folder(Classifier(), default_models_dir())


def _photo(digit: int, index: int, *, turned: int = 0) -> Image.Image:
    path = sorted((CYRIL / str(digit)).iterdir())[index]
    return Image.open(path).convert("RGB").rotate(turned, expand=True).resize((640, 480))


def _jpeg(*photos: Image.Image) -> bytes:
    row = Image.new("RGB", (sum(p.width for p in photos), max(p.height for p in photos)))
    for n, photo in enumerate(photos):
        row.paste(photo, (sum(p.width for p in photos[:n]), 0))
    out = io.BytesIO()
    row.save(out, "JPEG", quality=92)
    return out.getvalue()


@pytest.mark.parametrize("turned", [180, 135])
def test_a_hand_pointing_down_beside_a_signing_one_is_set_aside(reader, turned):
    """Read as a sign it was a confident second digit ("35" at 1.0 and 0.999)."""
    photo, reading = reader.look(_jpeg(_photo(3, 3), _photo(5, 7, turned=turned)))
    assert reading.digits == "3" and reading.set_aside == 1 and not reading.pointing_down
    assert reading.how == "hand landmarks, 1 more pointing down, not read"
    assert not reading.doubtful(0.95)
    assert reading.hands[0].box_on(photo)[2] < 650  # the upright one: the left photo


def test_hands_that_all_point_down_are_read_below_any_threshold(reader):
    from signdigits.worker.columns import reading_columns

    photo, reading = reader.look(_jpeg(_photo(5, 7, turned=180)))
    assert reading.digits == "5" and reading.pointing_down and reading.set_aside == 0
    assert reading.how.endswith(", pointing down")
    columns = reading_columns(reading, scale=photo.scale, threshold=0.0)
    assert columns["below_threshold"] is True and columns["digit"] == 5
    assert columns["hand"]["hands"][0]["below_threshold"] is True


def test_tilted_signing_hands_are_all_read(reader):
    """Tilted as far as the studio's most tilted sign (53 degrees): still two digits."""
    _, reading = reader.look(_jpeg(_photo(3, 3, turned=-45), _photo(1, 4, turned=45)))
    assert (reading.digits, reading.set_aside, reading.pointing_down) == ("31", 0, False)


def test_the_rule_on_a_hands_points():
    import numpy as np

    from signdigits.serving.hands.finder import Hand
    from signdigits.serving.hands.landmarks import Landmarks
    from signdigits.serving.hands.palm import Region
    from signdigits.serving.reader import points_up

    def hand(dx: float, dy: float) -> Hand:  # the palm's middle this far from the wrist
        points = np.zeros((21, 3), np.float32)
        points[0, :2] = (100, 100)
        points[[5, 9, 13], :2] = (100 + dx, 100 + dy)
        return Hand(Landmarks(points, 0.9, 0.5), Region((100, 100), 50.0, 0.0), 0.9)

    # Up (smaller y), level, a little below level, straight down.
    assert [points_up(hand(dx, dy)) for dx, dy in
            [(0, -10), (10, -10), (-10, 0), (10, 1), (0, 10)]] == [True, True, True, False,
                                                                   False]
