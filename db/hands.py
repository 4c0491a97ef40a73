"""Hands: one row per hand read on a photo, written with the photo's result.

The worker's row for an image carries its hands as JSON (``images.hand``, what the pages
draw from); this table holds the same hands one per row, so SQL can ask for them (every
7 read below the threshold, the second hand of each photo). They are written in the
transaction that writes the image's result and only while that result is the one
stored: a batch delivered twice, or an image cancelled meanwhile, adds no hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from signdigits.db.models import HANDS, HandRow, Image, ImageStatus

_COLUMNS = ("image_id", "position", "x0", "y0", "x1", "y1", "digit", "confidence",
            "below_threshold", "probabilities")


def store_hands(session: Session, *, rows: Sequence[dict]) -> None:
    """The hands of result ``rows`` (their ``hand`` JSON), for the images now done."""
    hands = [{"image_id": row["id"], "position": position, **_columns(record)}
             for row in rows if row.get("status") == ImageStatus.DONE
             for position, record in enumerate((row.get("hand") or {}).get("hands") or [])
             if "digit" in record]
    if not hands:
        return
    postgresql = session.get_bind().dialect.name == "postgresql"
    values = ", ".join(f"CAST(:{c} AS json)" if c == "probabilities" and postgresql
                       else f":{c}" for c in _COLUMNS)
    # INSERT ... SELECT from the image's own row: an image cancelled before this result
    # gets no hands; one whose hands an earlier delivery already wrote keeps them (the
    # model reads a photo the same way each time): ON CONFLICT DO NOTHING.
    statement = text(
        f"INSERT INTO {HANDS.name} ({', '.join(_COLUMNS)}) "
        f"SELECT {values} FROM images WHERE images.id = :image_id AND images.status = :done "
        "ON CONFLICT (image_id, position) DO NOTHING")
    session.execute(statement, [{**hand, "done": ImageStatus.DONE.value,
                                 "probabilities": json.dumps(hand["probabilities"])}
                                for hand in hands])


def hands_of(session: Session, *, image_id: int) -> list[HandRow]:
    """An image's hands in reading order."""
    return list(session.scalars(select(HandRow).where(HandRow.image_id == image_id)
                                .order_by(HandRow.position)))


def count_hands(session: Session, *, job_id: str) -> int:
    """How many hands the job's images hold."""
    return session.scalar(select(func.count()).select_from(HandRow).join(
        Image, Image.id == HandRow.image_id).where(Image.job_id == job_id)) or 0


def _columns(record: dict) -> dict:
    x0, y0, x1, y1 = record["box"]
    return {"x0": x0, "y0": y0, "x1": x1, "y1": y1, "digit": record["digit"],
            "confidence": record["confidence"],
            "below_threshold": bool(record.get("below_threshold", False)),
            "probabilities": record.get("probabilities")}
