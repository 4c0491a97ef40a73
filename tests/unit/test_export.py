"""``db/export.py``: what a result row is when it leaves the database (CSV, JSON)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from signdigits.db.export import (
    COLUMNS,
    csv_row,
    final_digit,
    final_digits,
    hand_box,
    result_record,
    reviewed_digit,
    reviewed_digits,
    spreadsheet_safe,
)


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


def test_the_hand_columns_come_last_and_the_box_is_one_cell():
    """Programs that read the files by position keep their columns; the box is the answer
    hand's, as four numbers in one CSV cell."""
    assert COLUMNS[-7:] == ["hand_box", "reading", "digits", "hand_count", "reviewed_digits",
                          "final_digits", "threshold"]
    hand = {"hands": [{"box": [10, 20, 110, 220]}, {"box": [0, 0, 5, 5]}]}
    image = SimpleNamespace(path="a.jpg", digit=3, confidence=0.9, below_threshold=False,
                            error=None, status="done", model_version="v", worker="w",
                            finished_at=None, hand=hand, reading="hand landmarks",
                            digits="3", hand_count=1)
    record = result_record(image, thresholds={"v": 0.95, "other": 0.8})
    # The hands list is JSON only; the threshold is the one of the model that read the row.
    assert list(record) == [*COLUMNS[:-1], "hands", "threshold"]
    assert record["threshold"] == 0.95
    assert list(csv_row(record)) == COLUMNS
    assert record["hand_box"] == [10, 20, 110, 220] and record["reading"] == "hand landmarks"
    assert csv_row(record)["hand_box"] == "10 20 110 220"
    none = SimpleNamespace(**{**image.__dict__, "digit": None, "hand": None,
                              "reading": "no hand found"})
    assert hand_box(none.hand) is None and csv_row(result_record(none))["hand_box"] == ""
    assert hand_box({"hands": []}) is None


def test_several_hands_are_a_string_a_count_and_a_list_in_reading_order():
    hand = {"hands": [{"box": [0, 0, 9, 9], "digit": 4, "confidence": 0.99,
                       "below_threshold": False, "landmarks": [[1, 2]] * 21},
                      {"box": [20, 0, 29, 9], "digit": 0, "confidence": 0.5,
                       "below_threshold": True}]}
    image = SimpleNamespace(path="two.jpg", digit=None, confidence=0.5, below_threshold=True,
                            error=None, status="done", model_version="v", worker="w",
                            finished_at=None, hand=hand, reading="hand landmarks, 2 hands",
                            digits="40", hand_count=2)
    record = result_record(image)
    assert (record["digit"], record["digits"], record["hand_count"]) == (None, "40", 2)
    assert record["hands"] == [
        {"position": 0, "box": [0, 0, 9, 9], "digit": 4, "confidence": 0.99,
         "below_threshold": False},
        {"position": 1, "box": [20, 0, 29, 9], "digit": 0, "confidence": 0.5,
         "below_threshold": True}]
    assert (csv_row(record)["digits"], csv_row(record)["hand_count"]) == ("40", 2)


@pytest.mark.parametrize(("review", "digits", "single"), [
    (None, "40", None),  # the model's
    (SimpleNamespace(digit=5, unusable=False, hand_digits=None), "5", 5),  # the whole photo
    (SimpleNamespace(digit=None, unusable=True, hand_digits=None), "", None),
    (SimpleNamespace(digit=None, unusable=False, hand_digits=[4, 6]), "46", None),
    (SimpleNamespace(digit=6, unusable=False, hand_digits=[None, 6]), "6", 6),  # one left
    (SimpleNamespace(digit=None, unusable=True, hand_digits=[None, None]), "", None),
])
def test_the_final_digits_follow_the_review_hand_by_hand(review, digits, single):
    image = SimpleNamespace(digit=None, digits="40")
    assert final_digits(image, review) == digits
    assert reviewed_digits(review) == (None if review is None else digits)
    assert final_digit(image, review) == single
