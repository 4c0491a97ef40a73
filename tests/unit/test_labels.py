"""``db/labels.py``: labels from folder names or a CSV, and the figures checked against
them (accuracy, the matrix, coverage and accuracy at a threshold)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from signdigits.db.labels import NO_HAND, Evaluation, LabelsError, label_of, read_labels_csv


@pytest.mark.parametrize(("path", "label"), [
    ("3/IMG_1.JPG", 3), ("0/a/b.png", 0), ("10/x.jpg", None), ("x/3/y.jpg", None),
    ("3.jpg", None), ("3", None), ("", None)])
def test_the_first_folder_named_0_to_9_is_the_label(path, label):
    assert label_of(path) == label


def test_a_labels_csv_with_or_without_a_header():
    assert read_labels_csv("path,digit\n3/a.jpg,3\n./b.jpg, 7\n\n") == {"3/a.jpg": 3,
                                                                         "b.jpg": 7}
    assert read_labels_csv("a.jpg,0\r\n") == {"a.jpg": 0}


@pytest.mark.parametrize(("text", "said"), [
    ("a.jpg,12\n", "line 1: the digit must be 0-9, not '12'"),
    ("path,digit\na.jpg,x\n", "line 2: the digit must be 0-9, not 'x'"),
    ("a.jpg,1,2\n", "line 1: expected path,digit, got 3 fields"),
    ("path,digit\n", "no path,digit line in it"), ("", "no path,digit line in it")])
def test_a_labels_csv_that_cannot_be_read_says_where(text, said):
    with pytest.raises(LabelsError, match="^" + said.replace("(", r"\(") + "$"):
        read_labels_csv(text)


def _add(found: Evaluation, label, digit, confidence, *, status="done", hands=1,
         review=None):
    found.add(label=label, status=status, digit=digit, confidence=confidence,
              below=confidence is not None and confidence < found.threshold,
              hand_count=hands, review=review)


def test_the_figures_count_one_hand_photos_and_no_hand_as_wrong():
    found = Evaluation(threshold=0.9)
    _add(found, 3, 3, 0.99)
    _add(found, 3, 5, 0.95)  # confident and wrong
    _add(found, 2, 2, 0.5)
    _add(found, 4, None, 0.0, hands=0)  # no hand found: wrong
    _add(found, 4, None, 0.9, hands=3)  # several hands: apart
    _add(found, 4, None, None, status="error")
    _add(found, 4, None, None, status="pending")
    assert (found.counted, found.right, found.several_hands, found.errors, found.pending) == (
        4, 2, 1, 1, 1)
    assert (found.kept, found.kept_right) == (2, 1)
    assert found.matrix[3][3] == 1 and found.matrix[3][5] == 1
    assert found.matrix[4][NO_HAND] == 1
    assert found.at(0.9) == (2, 1) and found.at(0.96) == (1, 1) and found.at(0.0) == (4, 2)
    assert found.at(1.0) == (0, 0)


def test_reviews_move_the_final_figures_not_the_models():
    found = Evaluation(threshold=0.9)
    _add(found, 3, 5, 0.95, review=SimpleNamespace(unusable=False, digit=3, hand_digits=None))
    _add(found, 2, 7, 0.4, review=SimpleNamespace(unusable=True, digit=None, hand_digits=None))
    _add(found, 1, 1, 0.99)
    assert (found.right, found.counted) == (1, 3)
    assert (found.final_right, found.final_counted) == (2, 2)  # the unusable one left out
