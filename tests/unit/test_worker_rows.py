"""The worker's pure rules for a read photo: its result columns, the CPU seconds per stage
``bench`` reads, the predict message's picture, and predict's preview names."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from signdigits.cli.predict import _free_name
from signdigits.serving.classifier import Prediction
from signdigits.serving.hands.finder import Hand
from signdigits.serving.hands.landmarks import Landmarks
from signdigits.serving.hands.palm import Region
from signdigits.serving.reader import HandReading, Reading
from signdigits.worker.batch import Looked, StageCpu
from signdigits.worker.columns import reading_columns
from signdigits.worker.predict import BadRequest, hands_to_place, unpack_photo


def _hand(x0: float, y0: float, *, padded: bool = False) -> Hand:
    points = np.zeros((21, 3), np.float32)
    points[:, 0] = np.linspace(x0, x0 + 40, 21)
    points[:, 1] = np.linspace(y0, y0 + 60, 21)
    return Hand(Landmarks(points, 0.9, 0.4), Region((x0 + 20, y0 + 30), 80.0, 0.1), 0.8, padded)


def _prediction(digit: int, confidence: float) -> Prediction:
    probabilities = [round((1 - confidence) / 9, 6)] * 10
    probabilities[digit] = confidence
    return Prediction(digit, digit, confidence, probabilities)


def test_no_hand_is_a_result_below_any_threshold():
    assert reading_columns(Reading([]), scale=1.0, threshold=0.0) == {
        "confidence": 0.0, "below_threshold": True, "reading": "no hand found",
        "digits": "", "hand_count": 0}


def test_one_hand_gives_its_digit_in_the_photos_pixels():
    reading = Reading([HandReading(_hand(10, 20, padded=True), _prediction(4, 0.8))])
    columns = reading_columns(reading, scale=0.5, threshold=0.9)  # decoded at half size
    assert (columns["digit"], columns["class_index"], columns["confidence"]) == (4, 4, 0.8)
    assert (columns["digits"], columns["hand_count"]) == ("4", 1)
    assert columns["below_threshold"] is True and columns["probabilities"][4] == 0.8
    assert columns["reading"] == "hand landmarks, on a padded copy"
    (hand,) = columns["hand"]["hands"]
    assert hand["box"] == [20, 40, 100, 160] and hand["padded"] is True
    assert (hand["digit"], hand["confidence"], hand["below_threshold"]) == (4, 0.8, True)
    assert reading_columns(reading, scale=0.5, threshold=0.8)["below_threshold"] is False


def test_several_hands_give_a_string_and_no_single_digit():
    reading = Reading([HandReading(_hand(10, 20), _prediction(4, 0.99)),
                       HandReading(_hand(100, 20), _prediction(1, 0.6))])
    columns = reading_columns(reading, scale=1.0, threshold=0.9)
    assert "digit" not in columns and "probabilities" not in columns  # NULL on the row
    assert (columns["digits"], columns["hand_count"], columns["confidence"]) == ("41", 2, 0.6)
    assert columns["below_threshold"] is True  # one hand below is enough
    assert columns["reading"] == "hand landmarks, 2 hands"
    assert [h["below_threshold"] for h in columns["hand"]["hands"]] == [False, True]
    assert reading_columns(reading, scale=1.0, threshold=0.5)["below_threshold"] is False
    cut = Reading(reading.hands, more_hands=True)  # more in the photo than were read
    assert reading_columns(cut, scale=1.0, threshold=0.5)["below_threshold"] is True
    assert "SIGNDIGITS_MAX_HANDS" in reading_columns(cut, scale=1.0, threshold=0.5)["reading"]


def test_cpu_seconds_per_stage_have_the_names_bench_reads():
    cpu = StageCpu()
    cpu.add(Looked(cpu=(0.001, 0.02, 0.01)))
    cpu.add(Looked(error="not an image", cpu=(0.0005, 0.0, 0.0)))
    cpu.classify += 0.0002
    assert cpu.seconds() == {"cpu_decode": 0.0015, "cpu_palms": 0.02, "cpu_landmarks": 0.01,
                             "cpu_classify": 0.0002}


def test_the_message_unpacks_to_the_photo_the_web_decoded():
    pixels = bytes(range(18))  # 3 x 2 RGB
    photo = unpack_photo(base64.b64encode(pixels).decode(), [3, 2], [300, 200])
    assert photo.image.size == (3, 2) and photo.image.tobytes() == pixels
    assert (photo.original_size, photo.scale) == ((300, 200), 0.01)


@pytest.mark.parametrize(("rgb", "size", "original", "says"), [
    (base64.b64encode(bytes(17)).decode(), [3, 2], [3, 2], "expected 18 RGB bytes for 3x2"),
    ("A" * 10_000, [3, 2], [3, 2], "expected 18 RGB bytes"),  # refused before decoding
    (None, [3, 2], [3, 2], "expected 18 RGB bytes"),
    ("!!!!", [3, 2], [3, 2], "not base64"),
    ("", [0, 2], [3, 2], "size must be [width, height], two positive integers"),
    ("", [3.0, 2], [3, 2], "size must be"),
    ("", [True, 2], [3, 2], "size must be"),
    ("", "3x2", [3, 2], "size must be"),
    ("", [3, 2], [3, -2], "original_size must be"),
    ("", [3, 2], None, "original_size must be"),
    ("", [4097, 4096], [4097, 4096], "over the 16,777,216-pixel limit"),
])
def test_a_malformed_message_is_one_line(rgb, size, original, says):
    with pytest.raises(BadRequest) as refused:
        unpack_photo(rgb, size, original)
    assert says in str(refused.value) and "\n" not in str(refused.value)


def test_hands_to_place_keep_their_points_and_what_the_reading_says_of_them():
    points = [[float(i), 2.0 * i] for i in range(21)]
    padded, whole = hands_to_place([{"landmarks": points, "padded": True},
                                    {"landmarks": points, "whole_photo": True}])
    assert padded.landmarks.points.shape == (21, 3) and padded.padded
    assert not padded.whole_photo and whole.whole_photo and not whole.padded
    assert padded.landmarks.points[:, :2].tolist() == points


@pytest.mark.parametrize(("place", "says"), [
    ({"landmarks": []}, "place must be a list"),
    ([{"landmarks": [[0, 0]] * 21}] * 66, "place must be a list of at most 65 hands"),
    (["a hand"], "each hand to place needs landmarks: 21 [x, y] pairs of numbers"),
    ([{"landmarks": [[0, 0]] * 20}], "21 [x, y] pairs"),
    ([{"landmarks": [[0, 0, 0]] * 21}], "21 [x, y] pairs"),
    ([{"landmarks": [["x", 0]] * 21}], "21 [x, y] pairs"),
    ([{"landmarks": [[float("nan"), 0]] * 21}], "21 [x, y] pairs"),
    ([{"landmarks": [["1", 0]] * 21}], "21 [x, y] pairs"),
    ([{"landmarks": [[True, 0]] * 21}], "21 [x, y] pairs"),
    ([{"landmarks": [[0, 0]] * 21, "padded": "yes"}], "padded and whole_photo must be"),
    ([{"landmarks": [[0, 0]] * 21, "whole_photo": 1}], "padded and whole_photo must be"),
])
def test_a_malformed_hand_to_place_is_one_line(place, says):
    with pytest.raises(BadRequest) as refused:
        hands_to_place(place)
    assert says in str(refused.value) and "\n" not in str(refused.value)


def test_preview_names_stay_apart():
    taken: set[str] = set()
    assert [_free_name(stem, taken) for stem in ("one", "one", "one-hand", "one-2")] == [
        "one", "one-2", "one-hand-2", "one-2-2"]
