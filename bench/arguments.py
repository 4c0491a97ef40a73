"""What the ``python -m signdigits.bench.*`` benchmarks share: the default dataset and the
argument types that turn a bad value into argparse's one-line error (exit 2).

Light on purpose: every benchmark imports it before parsing its arguments, so ``--help``
and a bad argument answer at once, and nothing here changes what a benchmark measures.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def default_dataset() -> Path:
    """``../shared/datasets/sign-language-digits`` beside the checkout, wherever the
    command runs (the shared dataset of ``signdigits bench`` and the tests)."""
    return Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sign-language-digits"


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a share, 0 or more and under 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected 0 or more and under 1, got {value:g}")
    return value


def folder_or_dataset(text: str) -> Path:
    """An argparse type: an existing folder; empty (``""``) means the shared dataset."""
    folder = Path(text) if text else default_dataset()
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{folder}: no such folder")
    return folder


def database_url(text: str) -> str:
    """An argparse type: a SQLite or PostgreSQL URL, as SQLAlchemy takes it."""
    from signdigits.config.settings import checked_database_url

    try:
        return checked_database_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
