"""``web/imaging.py`` and the predict answer's model: the pictures drawn from a row's stored
hand JSON (no model: the web loads none), and what travels to a worker."""

from __future__ import annotations

import base64
import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from signdigits.files.reading import ImageError
from signdigits.serving.preview import ANSWER_COLOUR, OTHER_COLOUR
from signdigits.web.imaging import (
    ANNOTATED_MIN_SIDE,
    annotated_jpeg,
    hand_png,
    photo_message,
    stored_hands,
)
from signdigits.web.schemas import PredictOut

MAX_PIXELS = 10**8


def _png(width: int, height: int, colour=(200, 200, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def _hand(x0: float, y0: float, side: float, *, digit: int | None = 3) -> dict:
    """A hand record as a worker stores it: 21 points in a column inside its box."""
    points = [[x0 + side / 2, y0 + side * (i + 0.5) / 21] for i in range(21)]
    return {"box": [x0, y0, x0 + side, y0 + side], "landmarks": points,
            "region": {"center": [x0 + side / 2, y0 + side / 2], "side": side, "rotation": 0.0},
            "presence": 0.99, "padded": False,
            **({"digit": digit, "confidence": 0.9} if digit is not None else {})}


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def _near(pixel, colour, tolerance=80) -> bool:  # JPEG blurs a 2-pixel line
    return int(np.abs(np.asarray(pixel) - np.asarray(colour)).max()) <= tolerance


def test_a_small_photo_is_enlarged_and_the_hands_drawn_in_its_own_pixels():
    photo = _png(100, 80)
    answer, other = _hand(10, 10, 40), {**_hand(60, 30, 30), "below_threshold": True}
    drawn = _decoded(annotated_jpeg(photo, [answer, other], max_pixels=MAX_PIXELS))
    assert drawn.shape[:2] == (320, 400)  # the longest side enlarged to the minimum
    scale = 400 / 100
    x0, y0 = (round(v * scale) for v in answer["box"][:2])
    x1 = round(answer["box"][2] * scale)
    assert _near(drawn[y0 + 60, x0], ANSWER_COLOUR)  # the answer's box, left edge
    assert _near(drawn[y0 + 60, x1 - 1], ANSWER_COLOUR)  # right edge, drawn inside
    ox0 = round(other["box"][0] * scale)
    assert _near(drawn[round(other["box"][1] * scale) + 40, ox0], OTHER_COLOUR)  # below
    x, y = (round(v * scale) for v in answer["landmarks"][10])
    assert _near(drawn[y, x + 2], (255, 255, 255))  # a point: white, ringed in green
    assert _near(drawn[5, 5], (200, 200, 200), tolerance=8)  # the photo elsewhere


def test_a_big_photo_is_reduced_and_no_hands_is_the_photo_alone():
    drawn = _decoded(annotated_jpeg(_png(2000, 1000, (10, 120, 200)), [],
                                    max_pixels=MAX_PIXELS))
    assert drawn.shape[:2] == (320, 640)
    assert _near(drawn.mean(axis=(0, 1)), (10, 120, 200), tolerance=4)
    smaller = _decoded(annotated_jpeg(_png(2000, 1000), [], max_pixels=MAX_PIXELS, side=300))
    assert smaller.shape[:2] == (150, 300)
    medium = _decoded(annotated_jpeg(_png(500, ANNOTATED_MIN_SIDE), [], max_pixels=MAX_PIXELS))
    assert medium.shape[:2] == (ANNOTATED_MIN_SIDE, 500)  # neither enlarged nor reduced


def test_the_crop_is_the_square_around_the_hand_upright():
    image = Image.new("RGB", (200, 100), (255, 0, 0))
    image.paste((0, 0, 255), (100, 0, 200, 100))  # red left half, blue right half
    out = io.BytesIO()
    image.save(out, "PNG")
    hand = _hand(70, 20, 60)  # centred on the boundary at x = 100
    crop = _decoded(hand_png(out.getvalue(), [hand], max_pixels=MAX_PIXELS))
    assert crop.shape == (224, 224, 3)
    assert _near(crop[112, 20], (255, 0, 0), 5) and _near(crop[112, 200], (0, 0, 255), 5)


def test_a_hand_that_cannot_be_drawn_is_an_image_error_not_a_crash():
    with pytest.raises(ImageError, match="stored hands cannot be drawn"):
        annotated_jpeg(_png(50, 50), [{"box": [1, 2]}], max_pixels=MAX_PIXELS)
    with pytest.raises(ImageError, match="stored hand cannot be cut out"):
        hand_png(_png(50, 50), [{"box": [1, 2, 3, 4]}], max_pixels=MAX_PIXELS)
    with pytest.raises(ImageError, match="not an image"):
        annotated_jpeg(b"not an image", [], max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("stored, count", [
    (None, 0), ({}, 0), ({"hands": None}, 0), ({"hands": "x"}, 0), ({"hands": []}, 0),
    ({"hands": [_hand(1, 1, 5), "junk", _hand(2, 2, 5)]}, 2),
])
def test_stored_hands(stored, count):
    assert len(stored_hands(SimpleNamespace(hand=stored))) == count


def test_the_message_carries_the_decoded_rgb_and_both_sizes():
    from signdigits.serving.photo import read_photo

    photo = read_photo(_png(600, 300, (1, 2, 3)))
    rgb_b64, size, original = photo_message(photo)
    assert original == [600, 300] and size == list(photo.image.size)
    raw = base64.b64decode(rgb_b64)
    assert len(raw) == size[0] * size[1] * 3
    pixels = np.frombuffer(raw, np.uint8).reshape(size[1], size[0], 3)
    assert (pixels == (1, 2, 3)).all()


def test_the_answer_for_a_photo_with_no_hand():
    answer = {"digit": None, "confidence": 0.0, "below_threshold": True, "threshold": 0.5,
              "probabilities": None, "model_version": "v", "reading": "no hand found",
              "hands": [], "crop_png": None, "worker": "w@h"}
    shown = PredictOut.of(answer, photo_size=(640, 480)).model_dump(exclude_unset=True)
    assert shown == {"digit": None, "confidence": 0.0, "below_threshold": True,
                     "threshold": 0.5, "probabilities": None, "model_version": "v",
                     "reading": "no hand found", "hands": [], "crop_png": None,
                     "photo_size": [640, 480]}


def test_the_answer_for_a_hand_keeps_what_a_page_draws():
    hand = _hand(10, 10, 40)
    answer = {"digit": 3, "confidence": 0.9, "below_threshold": False, "threshold": 0.5,
              "probabilities": [0.01] * 10, "model_version": "v", "reading": "hand landmarks",
              "hands": [hand], "crop_png": "iVBOR", "job_id": "j", "image_id": 4}
    shown = PredictOut.of(answer, photo_size=(100, 80)).model_dump(mode="json")
    assert shown["hands"] == [{"box": hand["box"], "landmarks": hand["landmarks"],
                               "digit": 3, "confidence": 0.9,
                               "below_threshold": None}]
    assert (shown["job_id"], shown["image_id"], shown["photo_size"]) == ("j", 4, [100, 80])
