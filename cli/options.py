"""Options several commands share, each with one rule and one message."""

from __future__ import annotations

import math

import typer


def _threshold(value: float | None) -> float | None:
    # typer's own range check lets NaN through to a message about "less than or equal to 1".
    if value is not None and not (math.isfinite(value) and 0 <= value <= 1):
        raise typer.BadParameter(f"must be a number from 0 to 1, such as 0.9 (got {value:g})")
    return value


def threshold_option() -> float | None:
    """``--threshold``: the confidence below which an answer is flagged for review."""
    return typer.Option(None, callback=_threshold, help="default: the model's")
