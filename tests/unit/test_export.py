"""``db/export.py``: what a result row is when it leaves the database (CSV, JSON)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from signdigits.db.export import csv_row, final_digit, reviewed_digit, spreadsheet_safe


@pytest.mark.parametrize(("text", "safe"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1+1", "'+1+1"),
    ("-2", "'-2"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("plain.jpg", "plain.jpg"),
    ("a=b.jpg", "a=b.jpg"),  # only a first character starts a formula
    (" =1", " =1"),
    ("'quoted", "'quoted"),
    ("", ""),
])
def test_spreadsheet_safe(text, safe):
    assert spreadsheet_safe(text) == safe


def test_a_csv_row_neutralises_text_cells_only():
    record = {"path": "=cmd|' /C calc'!A0", "digit": 3, "confidence": -0.5,
              "below_threshold": False, "error": "-bad", "status": "done",
              "model_version": "+v", "worker": "@host", "finished_at": None,
              "reviewed_digit": None, "final_digit": 3}
    row = csv_row(record)
    assert row["path"] == "'=cmd|' /C calc'!A0"
    assert (row["error"], row["model_version"], row["worker"]) == ("'-bad", "'+v", "'@host")
    assert row["confidence"] == -0.5 and row["digit"] == 3  # numbers are left as they are
    assert row["finished_at"] == "" and row["reviewed_digit"] == ""  # None: an empty cell


@pytest.mark.parametrize(("review", "reviewed", "final"), [
    (None, None, 7),  # nobody reviewed it: the model's digit
    (SimpleNamespace(digit=2, unusable=False), 2, 2),  # the person's digit wins
    (SimpleNamespace(digit=7, unusable=False), 7, 7),
    (SimpleNamespace(digit=None, unusable=True), None, None),  # unusable: no digit at all
])
def test_the_final_digit(review, reviewed, final):
    image = SimpleNamespace(digit=7)
    assert reviewed_digit(review) == reviewed
    assert final_digit(image, review) == final
