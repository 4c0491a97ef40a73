"""One photo read while a person waits: ``POST /api/predict`` and the ``/try`` page.

The web process decodes the photo itself with :func:`serving.photo.read_photo` (it must
answer "not an image" at once), so the message carries only the decoded picture: its RGB
bytes (about 240 pixels a side) and the photo's own size. This task finds the hands and
classifies them: it holds a worker process for tens of milliseconds, not for a decode of
a 12-megapixel photo. Nothing is written to the database.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from signdigits.broker.messages import PREDICT_TASK_NAME
from signdigits.serving.hands.finder import Hand
from signdigits.serving.hands.landmarks import Landmarks
from signdigits.serving.hands.palm import Region
from signdigits.serving.photo import Photo
from signdigits.serving.preview import hand_crop
from signdigits.serving.reader import (
    Closer,
    closer_search,
    closer_step,
    first_look,
    placed_closer,
)
from signdigits.worker.app import app
from signdigits.worker.columns import reading_columns
from signdigits.worker.context import get_context

_REPLY_SECONDS = 60  # an answer nobody collected by then is dropped by Redis
# The largest decoded picture a message may carry: read_photo gives about 240 pixels a
# side, so this is only there to refuse a message that would take gigabytes to unpack.
MAX_PIXELS = 4096 * 4096
CROP_SIDE = 224  # the hand as the landmark model read it
MAX_PLACED = 65  # hands a message may place again: SIGNDIGITS_MAX_HANDS' bound, 64, + 1


class BadRequest(ValueError):
    """The message's arguments cannot be a decoded photo; the answer says why, in one line."""


@lru_cache(maxsize=1)
def _replies(url: str):
    import redis

    return redis.Redis.from_url(url)


@app.task(name=PREDICT_TASK_NAME, acks_late=False)
def predict_image(rgb_b64: str, size: list[int], original_size: list[int],
                  threshold: float | None = None, reply_to: str | None = None,
                  place: list[dict] | None = None, last_look: bool = False) -> dict:
    """A decoded photo -> the digit, how it was read, and the hands found.

    ``rgb_b64``: the RGB bytes (uint8, height x width x 3, rows top first) of the picture
    :func:`read_photo` decoded, base64; ``size``: its width and height; ``original_size``:
    the photo's own upright width and height, the pixels the hands are reported in.
    ``place``: hands already found on a smaller decode of the photo (each its
    ``landmarks``, 21 [x, y] in the photo's own pixels, ``padded`` and ``whole_photo``),
    placed again on this one instead of searched for; those the landmark model is no
    longer sure of are left out of the answer (serving.reader.look_again). The answer's
    ``closer`` says what a batch would do next (search a closer decode, or place these
    ``place`` hands on it) and ``found`` how many hands were found, read or not. A first
    look at a photo decoded reduced leaves the tile search to that closer one
    (serving.reader.first_look); ``last_look`` says this is it: searched in the tiles
    the first look left (serving.reader.closer_search), and no further look asked for.

    The answer is pushed to the Redis list ``reply_to`` on the broker, where the web
    waits for it. Acknowledged on receipt (not late): a prediction redelivered an hour
    later would answer nobody. Malformed input gets an ``error`` answer, not a retry.
    """
    try:
        answer = _predict(rgb_b64, size, original_size, threshold, place, last_look)
    except BadRequest as exc:
        answer = {"error": str(exc)}
    except Exception as exc:
        # Told at once: without a reply the person waited the whole timeout, then read
        # "no worker answered", when one had answered and failed. The task still fails.
        _reply(reply_to, {"failed": f"{exc.__class__.__name__}: {exc}"})
        raise
    _reply(reply_to, answer)
    return answer


def _reply(reply_to: str | None, answer: dict) -> None:
    if reply_to:
        client = _replies(app.conf.broker_url)
        with client.pipeline() as pipe:
            pipe.rpush(reply_to, json.dumps(answer)).expire(reply_to, _REPLY_SECONDS).execute()


def _predict(rgb_b64: str, size: Any, original_size: Any, threshold: float | None,
             place: Any, last_look: Any) -> dict:
    photo = unpack_photo(rgb_b64, size, original_size)
    to_place = None if place is None else hands_to_place(place)
    if not isinstance(last_look, bool):
        raise BadRequest("last_look must be true or false")
    ctx = get_context()
    # In a decode thread, with that thread's hand finder: the finders are not thread-safe,
    # and those threads are the only ones that use them, whatever the pool runs tasks in.
    if to_place is not None:
        hands = ctx.decoders.submit(placed_closer, ctx.reader, photo.image, to_place,
                                    photo.scale).result()
    elif last_look:
        hands = ctx.decoders.submit(closer_search, ctx.reader, photo.image).result()
    else:
        hands = ctx.decoders.submit(first_look, ctx.reader, photo).result()
    # What a batch would do next (serving.reader.look_again), judged on every hand found
    # (those not read too), for the web to follow: it has the photo's bytes, this the hands.
    step = closer_step([hand.box for hand in hands]) \
        if photo.scale < 1 and to_place is None and not last_look else None
    reading = ctx.reader.classify([hands])[0]
    if threshold is None:
        threshold = ctx.settings.threshold
    if threshold is None:
        threshold = ctx.classifier.info.default_threshold
    # The columns a batch's row would get: no hand is below any threshold (a person
    # should look), several hands are read left to right.
    columns = reading_columns(reading, scale=photo.scale, threshold=threshold)
    records = (columns.get("hand") or {}).get("hands") or []
    return {
        "digit": columns.get("digit"),
        "digits": columns["digits"],
        "hand_count": columns["hand_count"],
        "confidence": columns["confidence"],
        "below_threshold": columns["below_threshold"],
        "threshold": threshold,
        "probabilities": columns.get("probabilities"),
        "model_version": ctx.classifier.version,
        "reading": reading.how,
        "hands": records,
        "crop_png": _crop_png(photo, records[0]) if records else None,
        "found": len(hands),
        "closer": None if step is None else {
            "step": step.value,
            "place": [place_record(hand, scale=photo.scale) for hand in hands]
            if step is Closer.PLACE else None},
    }


def place_record(hand: Hand, *, scale: float) -> dict:
    """A hand found, as a ``place`` item: points in the photo's own pixels (``scale``:
    decoded per original), and what its reading says of it."""
    return {"landmarks": (hand.landmarks.points[:, :2] / scale).tolist(),
            "padded": hand.padded, "whole_photo": hand.whole_photo}


def unpack_photo(rgb_b64: Any, size: Any, original_size: Any) -> Photo:
    """The message's picture as the :class:`Photo` the web decoded; BadRequest if it is not
    one."""
    width, height = _dimensions("size", size)
    _dimensions("original_size", original_size)
    if width * height > MAX_PIXELS:
        raise BadRequest(f"size {width}x{height} is over the {MAX_PIXELS:,}-pixel limit")
    expected = width * height * 3
    if not isinstance(rgb_b64, str) or len(rgb_b64) > 4 * (expected // 3) + 4:
        # Checked before decoding: a message of any length would be unpacked whole.
        raise BadRequest(f"expected {expected:,} RGB bytes for {width}x{height} as base64")
    try:
        raw = base64.b64decode(rgb_b64, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("rgb_b64 is not base64") from None
    if len(raw) != expected:
        raise BadRequest(f"expected {expected:,} RGB bytes for {width}x{height}, "
                         f"got {len(raw):,}")
    image = Image.frombytes("RGB", (width, height), raw)
    return Photo(image, (int(original_size[0]), int(original_size[1])))


def hands_to_place(place: Any) -> list[Hand]:
    """The message's ``place`` (:func:`place_record` items) as hands in the photo's own
    pixels (a factor of ``photo.scale`` away from the picture's); BadRequest if it is not
    a list of such hands."""
    if not isinstance(place, list) or len(place) > MAX_PLACED:
        raise BadRequest(f"place must be a list of at most {MAX_PLACED} hands")
    hands = []
    for item in place:
        points = item.get("landmarks") if isinstance(item, dict) else None
        if not (isinstance(points, list) and len(points) == 21 and all(
                isinstance(point, list) and len(point) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in point) for point in points)):
            raise BadRequest("each hand to place needs landmarks: 21 [x, y] pairs of numbers")
        flags = [item.get(name, False) for name in ("padded", "whole_photo")]
        if not all(isinstance(flag, bool) for flag in flags):
            raise BadRequest("a hand's padded and whole_photo must be true or false")
        xy = np.asarray(points, np.float32)
        landmarks = Landmarks(np.column_stack([xy, np.zeros(21, np.float32)]), 1.0, 0.5)
        # A palm score (unknown here) only tells a whole-photo hand from a palm's.
        hands.append(Hand(landmarks, Region((0.0, 0.0), 0.0, 0.0),
                          None if flags[1] else 1.0, flags[0]))
    return hands


def _dimensions(name: str, value: Any) -> tuple[int, int]:
    # bool is an int to Python, and JSON's true is no width.
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                       for v in value)):
        raise BadRequest(f"{name} must be [width, height], two positive integers")
    return int(value[0]), int(value[1])


def _crop_png(photo: Photo, record: dict) -> str:
    buffer = io.BytesIO()
    hand_crop(photo.image, record, scale=photo.scale, side=CROP_SIDE).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
