"""Calibration on synthetic arrays: signer folds, temperature, ECE and the threshold rule.

The same on the shipped model's real predictions, and cv/train end to end, are in
``tests/test_calibration.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from signdigits.training.calibration import (
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    selective_point,
    softmax,
)
from signdigits.training.cv import signer_folds
from signdigits.training.fit import Recipe, recipe_differences


def test_folds_keep_each_signer_in_one_fold_and_are_balanced():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), rng.integers(5, 12, size=60))
    fold = signer_folds(groups, 3, seed=7)
    for g in np.unique(groups):
        assert len(set(fold[groups == g].tolist())) == 1
    sizes = np.bincount(fold)
    assert len(sizes) == 3 and sizes.max() - sizes.min() <= 12
    assert (signer_folds(groups, 3, seed=7) == fold).all()
    with pytest.raises(ValueError, match="folds need"):
        signer_folds(np.arange(2), 3, seed=7)


def test_temperature_is_recovered_from_overconfident_logits():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2.0, size=(4000, 10))
    probs = softmax(true_logits)
    classes = np.array([rng.choice(10, p=p) for p in probs])
    # A model 3x too sure of itself: the fitted temperature undoes it.
    t = fit_temperature(3 * true_logits, classes)
    assert 2.7 < t < 3.3
    before = expected_calibration_error(softmax(3 * true_logits), classes)
    after = expected_calibration_error(softmax(3 * true_logits, t), classes)
    assert after < before / 3


def test_ece_of_a_known_case():
    # Two bins: 0.9-confident and right half the time (gap 0.4), 0.6 and always right (0.4).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    classes = np.array([0, 1, 0, 0])
    assert expected_calibration_error(probs, classes, bins=10) == pytest.approx(0.4)


def test_threshold_is_the_lowest_that_meets_the_target():
    # 1000 images: the 3 mistakes have confidences 0.42, 0.44 and 0.61.
    confidence = np.linspace(0.30, 1.0, 1000)
    wrong = np.searchsorted(confidence, [0.42, 0.44, 0.61])
    probs = np.column_stack([confidence] + [(1 - confidence) / 9] * 9)
    classes = np.zeros(1000, np.int64)
    classes[wrong] = 1
    threshold = choose_threshold(probs, classes, target_accuracy=0.998)
    point = selective_point(probs, classes, threshold)
    assert point["accuracy"] >= 0.998 and point["accepted_wrong"] <= 1
    below = selective_point(probs, classes, threshold - 0.005)
    assert below["accuracy"] < 0.998
    assert 0.42 < threshold <= 0.445  # two mistakes out of ~800 is too many, one is not




def test_recipe_differences_name_each_field_that_differs():
    """A CV result is reused only by a training with its recipe; the refusal names what
    differs, both values."""
    recorded = Recipe(epochs=50).__dict__
    assert recipe_differences(recorded, Recipe(epochs=50)) == []
    assert recipe_differences(recorded, Recipe(epochs=60, l2=0.02)) == [
        "epochs 50 (this training: 60)", "l2 0.01 (this training: 0.02)"]
    assert recipe_differences({**recorded, "architecture": "slim"}, Recipe(epochs=50)) == [
        "architecture 'slim' (this training: None)"]
    assert recipe_differences(None, Recipe()) == ["none recorded"]


def test_a_photo_without_a_hand_is_wrong_and_below_any_threshold_above_0():
    """All-zero probabilities (no hand found): never accepted, never counted right, even
    where its class is column 0 (argmax of zeros)."""
    probs = np.array([[0.9, 0.1], [0.0, 0.0], [0.2, 0.8]])
    classes = np.array([0, 0, 1])
    point = selective_point(probs, classes, 0.005)
    assert point["accepted"] == 2 and point["accuracy"] == 1.0
    everything = selective_point(probs, classes, 0.0)
    assert everything["accepted"] == 3 and everything["accepted_wrong"] == 1


def test_calibration_without_held_out_photos_keeps_the_defaults():
    from signdigits.training.calibration import calibration_summary

    empty = calibration_summary(np.zeros((0, 10)), np.zeros(0, np.int64))
    assert empty["temperature"] == 1.0 and empty["threshold"] == 0.5
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 4, size=(300, 10))
    summary = calibration_summary(logits, logits.argmax(1))  # always right: no threshold needed
    assert summary["threshold"] == 0.0 and summary["at_threshold"]["coverage"] == 1.0
