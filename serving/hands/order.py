"""The order a person reads several hands in: left to right, rows top to bottom.

Hands of people side by side stand at different heights, so a row is not a band of
fixed height: a hand joins the row above when its centre is above the lowest edge of
that row's hands, and starts a new row only when it lies wholly lower (a collage's
second row, one person's hand held under another's).
"""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def reading_order(boxes: Sequence[Box]) -> list[int]:
    """The indices of ``boxes`` in reading order."""
    rows: list[list[int]] = []
    for index in sorted(range(len(boxes)), key=lambda i: _centre(boxes[i])[1]):
        if rows and _centre(boxes[index])[1] <= max(boxes[i][3] for i in rows[-1]):
            rows[-1].append(index)
        else:
            rows.append([index])
    return [index for row in rows for index in sorted(row, key=lambda i: _centre(boxes[i])[0])]


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
