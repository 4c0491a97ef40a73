"""Cross-validation folds, temperature scaling, calibration error and the threshold rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from signdigits.serving.artifact import read_model_info
from signdigits.training.calibration import (
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    log_loss,
    selective_point,
    softmax,
)
from signdigits.training.cv import signer_folds
from signdigits.training.fit import Recipe, recipe_differences
from tests.conftest import copy_sample, make_env, run_cli


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


def test_temperature_and_threshold_on_real_predictions(dataset):
    """The shipped model on its own test signers: fitting lowers the log loss, and the
    chosen threshold meets the target on the data it was chosen on."""
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.preprocess import preprocess_image
    from tests.conftest import unseen_signer_files

    files = unseen_signer_files(dataset)[:200]
    classifier = Classifier(None, threads=1)
    x = np.stack([preprocess_image(p) for p, _ in files])
    probs = classifier.probabilities(x)
    table = list(classifier.info.class_to_digit)
    classes = np.array([table.index(d) for _, d in files])
    logits = np.log(np.clip(probs, 1e-12, 1))  # log-probabilities are logits
    t = fit_temperature(logits, classes)
    assert log_loss(softmax(logits, t), classes) <= log_loss(probs, classes) + 1e-9
    threshold = choose_threshold(softmax(logits, t), classes)
    assert selective_point(softmax(logits, t), classes, threshold)["accuracy"] >= 0.998


def test_cv_then_train_with_its_result_on_a_tiny_subset(dataset, tmp_path):
    copy_sample(dataset, tmp_path / "data", per_digit=5)
    cv_file = tmp_path / "cv.json"
    result = run_cli("cv", "--data", str(tmp_path / "data"), "--folds", "2", "--epochs", "1",
                     "--augmentation", "wide", "--members", "2", "--out", str(cv_file),
                     env=make_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fold 2/2: accuracy" in result.stderr
    assert "out-of-fold accuracy" in result.stdout.splitlines()[-1]
    cv = json.loads(cv_file.read_text())
    # Out-of-fold logits for every development (non-test) image, each predicted once.
    assert len(cv["logits"]) == len(cv["names"]) == cv["images"] > 0
    # slim (the default), two views of each of the two networks
    assert cv["multiply_adds_per_image"] == 2 * 2 * 15_009_024

    model = tmp_path / "m.keras"
    result = run_cli("train", "--data", str(tmp_path / "data"), "--epochs", "1",
                     "--augmentation", "wide", "--members", "2", "--cv-result", str(cv_file),
                     "--out", str(model),
                     env=make_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert cv["recipe"]["augmentation"] == meta_recipe(model)["augmentation"] == "wide"
    # The served graph (exported to ONNX and checked against Keras) averages both networks.
    assert meta_recipe(model)["members"] == 2
    assert read_model_info(model).metadata["multiply_adds_per_image"] == 4 * 15_009_024
    meta = read_model_info(model).metadata
    assert meta["temperature"] == cv["calibration"]["temperature"]
    assert meta["default_threshold"] == cv["calibration"]["threshold"]
    assert meta["split"]["train_images"] == cv["images"]
    assert "at_threshold" in meta["evaluation"]["test"]

    # Another recipe than the cross-validation's is refused, in one line: other epochs, or
    # the same epochs with the standard augmentation or one network.
    for other in (["--epochs", "2", "--augmentation", "wide", "--members", "2"],
                  ["--epochs", "1", "--members", "2"],
                  ["--epochs", "1", "--augmentation", "wide", "--members", "1"]):
        result = run_cli("train", "--data", str(tmp_path / "data"), *other,
                         "--cv-result", str(cv_file), "--out", str(model),
                         env=make_env(), cwd=tmp_path)
        assert result.returncode == 2, other
        assert "error: --cv-result" in result.stderr and "another recipe" in result.stderr
        assert "(this training: " in result.stderr  # names what differs


def meta_recipe(model):
    return read_model_info(model).metadata["recipe"]


def test_a_recipe_recorded_before_augmentation_and_members_is_one_standard_network():
    recorded = {k: v for k, v in Recipe(epochs=80).__dict__.items()
                if k not in ("augmentation", "members")}
    assert not recipe_differences(recorded, Recipe(epochs=80, members=1))
    # Not the default of 2 networks, whatever the default is now.
    assert recipe_differences(recorded, Recipe(epochs=80)) == [
        "members 1 (this training: 2)"]
    assert recipe_differences(recorded, Recipe(epochs=80, members=1, augmentation="wide"))
    assert recipe_differences({**recorded, "epochs": 81}, Recipe(epochs=80, members=1))
    assert recipe_differences(None, Recipe())
    with pytest.raises(ValueError, match="at least one network"):
        Recipe(members=0)


def test_an_unknown_augmentation_is_refused_in_one_line(tmp_path):
    result = run_cli("cv", "--data", str(tmp_path), "--augmentation", "huge", env=make_env(),
                     cwd=tmp_path)
    assert result.returncode == 2
    assert "--augmentation 'huge': expected one of standard, wide, strong" in result.stderr
