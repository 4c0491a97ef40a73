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
from tests.conftest import copy_sample, make_env, run_cli


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


def test_an_unknown_augmentation_is_refused_in_one_line(tmp_path):
    result = run_cli("cv", "--data", str(tmp_path), "--augmentation", "huge", env=make_env(),
                     cwd=tmp_path)
    assert result.returncode == 2
    assert "--augmentation 'huge': expected one of standard, wide, strong" in result.stderr
