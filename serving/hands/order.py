"""The order a person reads several hands in: left to right, rows top to bottom.

People side by side hold their hands at different heights, and a collage's photos need
not line up, so a row is not a band of fixed height. A hand starts a new row only when
it stands under a hand of the row above: over the same stretch of the photo (a third of
the narrower one's width shared) and lower than that hand's middle (a collage's second
row, one person's hand held under another's). Every other hand is in its row, read left
to right by its centre.
"""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]  # x0, y0, x1, y1
_SAME_COLUMN = 1 / 3  # of the narrower hand's width shared: one hand is above the other


def reading_order(boxes: Sequence[Box]) -> list[int]:
    """The indices of ``boxes`` in reading order."""
    rows: list[list[int]] = []
    for index in sorted(range(len(boxes)), key=lambda i: _centre(boxes[i])[1]):
        if rows and not any(_under(boxes[index], boxes[other]) for other in rows[-1]):
            rows[-1].append(index)
        else:
            rows.append([index])
    return [index for row in rows for index in sorted(row, key=lambda i: _centre(boxes[i])[0])]


def _under(box: Box, above: Box) -> bool:
    shared = min(box[2], above[2]) - max(box[0], above[0])
    narrower = min(box[2] - box[0], above[2] - above[0])
    return shared > _SAME_COLUMN * narrower and box[1] >= _centre(above)[1]


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
