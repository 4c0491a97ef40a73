"""One photo classified while a person waits: ``POST /api/predict`` and the ``/try`` page.

The web process decodes and preprocesses the photo itself (it must answer "not an image"
at once and show the 64 x 64 view), so the message carries only those 64 x 64 pixels as
bytes, and this task only runs the model: it holds a worker process for milliseconds,
not for a decode of a 12-megapixel photo. Nothing is written to the database.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache

import numpy as np

from signdigits.broker.messages import PREDICT_TASK_NAME
from signdigits.serving.model_input import IMAGE_SIZE
from signdigits.worker.app import app
from signdigits.worker.context import get_context

_REPLY_SECONDS = 60  # an answer nobody collected by then is dropped by Redis


@lru_cache(maxsize=1)
def _replies(url: str):
    import redis

    return redis.Redis.from_url(url)


@app.task(name=PREDICT_TASK_NAME, acks_late=False)
def predict_image(pixels_b64: str, threshold: float | None = None,
                  reply_to: str | None = None) -> dict:
    """Pixels as 64 x 64 uint8 grayscale, base64 -> digit, confidence, probabilities.

    The answer is pushed to the Redis list ``reply_to`` on the broker, where the web
    waits for it. Acknowledged on receipt (not late): a prediction redelivered an hour
    later would answer nobody. Malformed pixels get an ``error`` answer, not a retry.
    """
    try:
        answer = _predict(pixels_b64, threshold)
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


def _predict(pixels_b64: str, threshold: float | None) -> dict:
    ctx = get_context()
    raw = base64.b64decode(pixels_b64, validate=False)
    if len(raw) != IMAGE_SIZE * IMAGE_SIZE:
        return {"error": f"expected {IMAGE_SIZE * IMAGE_SIZE} pixel bytes, got {len(raw)}"}
    pixels = np.frombuffer(raw, np.uint8).reshape(1, IMAGE_SIZE, IMAGE_SIZE)
    prediction = ctx.classifier.classify(pixels.astype(np.float32) / np.float32(255.0))[0]
    if threshold is None:
        threshold = ctx.settings.threshold
    if threshold is None:
        threshold = ctx.classifier.info.default_threshold
    return {
        "digit": prediction.digit,
        "confidence": prediction.confidence,
        "below_threshold": prediction.confidence < threshold,
        "threshold": threshold,
        "probabilities": prediction.probabilities,
        "model_version": ctx.classifier.version,
    }
