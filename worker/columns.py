"""What a reading becomes in the results database: the columns of its ``images`` row,
whose ``hand`` JSON also carries each hand's row of ``hands`` (db/hands.py writes them).

A batch's rows and ``POST /api/predict``'s answer both come from here, so a photo read
either way is stored the same.
"""

from __future__ import annotations

from typing import Any

from signdigits.serving.preview import hand_record
from signdigits.serving.reader import Reading


def reading_columns(reading: Reading, *, scale: float, threshold: float) -> dict[str, Any]:
    """A reading as result columns. No hand found is a result, not an error: no digit,
    confidence 0, below the threshold (a person should look), and ``reading`` says so.
    Several hands: ``digits`` in reading order, no single ``digit``, the least sure hand's
    confidence, and below the threshold when any hand is (or more hands than were read).
    Hands pointing down only, or a hand unlike every training hand: read, and below the
    threshold (``Reading.doubtful``)."""
    columns: dict[str, Any] = {"confidence": reading.confidence, "reading": reading.how,
                               "digits": reading.digits, "hand_count": len(reading.hands),
                               "below_threshold": reading.doubtful(threshold)}
    if reading.hands:
        columns["hand"] = {"hands": [hand_record(
            h.hand, scale=scale, digit=h.prediction.digit, confidence=h.prediction.confidence,
            probabilities=h.prediction.probabilities,
            below_threshold=reading.hand_doubtful(h, threshold))
            for h in reading.hands]}
    answer = reading.answer
    if answer is not None:
        p = answer.prediction
        columns.update(digit=p.digit, class_index=p.class_index, probabilities=p.probabilities)
    return columns
