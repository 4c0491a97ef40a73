"""Calibration on the shipped model's real predictions, and cv then train end to end.

The rules on synthetic arrays (signer folds, temperature, ECE, the threshold, recipes)
are the unit tier's: ``tests/unit/test_calibration.py``.
"""

from __future__ import annotations

import json

import numpy as np

from signdigits.serving.artifact import read_model_info
from signdigits.training.calibration import (
    choose_threshold,
    fit_temperature,
    log_loss,
    selective_point,
    softmax,
)
from tests.conftest import link_signers, make_env, run_cli


def test_temperature_and_threshold_on_real_predictions(dataset):
    """The shipped model on 200 photos of its own test signers: its temperature is already
    in the served graph (refitting finds one near 1, and never raises the log loss), the
    threshold rule finds the lowest threshold meeting a target on them, and the shipped
    default threshold holds on them what the out-of-fold predictions promised."""
    from signdigits.serving.classifier import Classifier
    from signdigits.training.hand_features import read_features
    from tests.conftest import unseen_signer_files

    files = unseen_signer_files(dataset)[:200]
    x, found = read_features([path for path, _ in files])
    assert found.mean() > 0.95, found.mean()
    classifier = Classifier(None, threads=1)
    probs = classifier.probabilities(x[found])
    table = list(classifier.info.class_to_digit)
    classes = np.array([table.index(d) for (_, d), hand in zip(files, found, strict=True)
                        if hand])
    logits = np.log(np.clip(probs, 1e-12, 1))  # log-probabilities are logits
    t = fit_temperature(logits, classes)
    assert 0.7 < t < 1.4, t
    refitted = softmax(logits, t)
    assert log_loss(refitted, classes) <= log_loss(probs, classes) + 1e-9
    threshold = choose_threshold(refitted, classes, target_accuracy=0.98)
    assert selective_point(refitted, classes, threshold)["accuracy"] >= 0.98
    assert threshold == 0 or selective_point(refitted, classes, threshold - 0.005)[
        "accuracy"] < 0.98
    shipped = selective_point(probs, classes, classifier.info.default_threshold)
    assert shipped["coverage"] >= 0.9 and shipped["accuracy"] >= 0.98, shipped


def test_cv_then_train_with_its_result_on_a_tiny_subset(dataset, tmp_path):
    """Five signers: one set aside for the test, two folds of two over the other four."""
    link_signers(dataset, tmp_path / "data", [0, 1, 2, 3, 5])
    cv_file = tmp_path / "cv.json"
    result = run_cli("cv", "--data", str(tmp_path / "data"), "--folds", "2", "--epochs", "50",
                     "--out", str(cv_file), env=make_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2-fold CV by signer on 40 photos of 4 signers (test split of 10 set aside)" in \
        result.stderr
    assert "fold 2/2: accuracy" in result.stderr
    assert "out-of-fold accuracy" in result.stdout.splitlines()[-1]
    cv = json.loads(cv_file.read_text())
    # Out-of-fold logits for every development (non-test) photo, each predicted once.
    assert len(cv["logits"]) == len(cv["names"]) == cv["images"] == 40
    assert cv["recipe"]["epochs"] == 50 and len(cv["fold_accuracy"]) == 2

    model = tmp_path / "m.keras"
    result = run_cli("train", "--data", str(tmp_path / "data"), "--epochs", "50",
                     "--cv-result", str(cv_file), "--out", str(model),
                     env=make_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    meta = read_model_info(model).metadata
    assert meta["temperature"] == cv["calibration"]["temperature"]
    assert meta["default_threshold"] == cv["calibration"]["threshold"]
    assert meta["calibration"]["on"] == "2-fold out-of-fold"
    assert meta["split"]["train_images"] == cv["images"] and meta["split"]["test_images"] == 10
    assert meta["evaluation"]["cross_validation"]["accuracy"] == cv["accuracy"]
    assert "at_threshold" in meta["evaluation"]["test"]
    # Fitted on every development photo with a hand.
    assert meta["history"]["hands"] == cv["images"] - cv["no_hand"]

    # Another recipe than the cross-validation's is refused, in one line, before any
    # photo is read: other steps, another weight penalty, another seed.
    for other in (["--epochs", "60"], ["--epochs", "50", "--l2", "0.02"],
                  ["--epochs", "50", "--seed", "8"]):
        result = run_cli("train", "--data", str(tmp_path / "data"), *other,
                         "--cv-result", str(cv_file), "--out", str(model),
                         env=make_env(), cwd=tmp_path)
        assert result.returncode == 2, other
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"error: --cv-result {cv_file}: made with another recipe"), line
        assert "(this training: " in line  # names what differs
    # Other data: four of its five signers (those test_training trains on: their hands
    # are in the cache already).
    link_signers(dataset, tmp_path / "fewer", range(4))
    result = run_cli("train", "--data", str(tmp_path / "fewer"), "--epochs", "50",
                     "--cv-result", str(cv_file), "--out", str(model),
                     env=make_env(), cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line == (f"error: --cv-result {cv_file}: the cross-validation was run on other "
                    "data (digest differs)")


def test_cross_validation_options_that_contradict_are_refused_in_one_line(tmp_path):
    for options, refusal in ((["--cv", "1"], "--cv 1: cross-validation needs at least 2"),
                             (["--cv", "2", "--cv-result", "cv.json"], "--cv and --cv-result")):
        result = run_cli("train", "--data", str(tmp_path), *options, env=make_env(),
                         cwd=tmp_path)
        [line] = result.stderr.strip().splitlines()
        assert result.returncode == 2 and line.startswith(f"error: {refusal}"), line
