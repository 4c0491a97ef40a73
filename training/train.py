"""Train the hand classifier on labelled photos and save a self-describing artifact.

Two ways, one artifact:

- with a cross-validation result (``signdigits cv --out``, or ``train --cv K`` which runs
  it first), the classifier is fitted on every development signer (the split's train and
  validation signers) for the recipe's fixed epochs, and the temperature and default
  threshold come from the out-of-fold predictions;
- without one, it is fitted on the train signers, and temperature and threshold are
  fitted on the validation signers.

Either way the test signers are predicted once, at the end, for the figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from signdigits.serving.artifact import ModelInfo, save_artifact
from signdigits.training.calibration import (
    TARGET_COVERAGE,
    TARGET_SELECTIVE_ACCURACY,
    calibration_summary,
    expected_calibration_error,
    selective_point,
    softmax,
)
from signdigits.training.cv import cross_validate, development_indices
from signdigits.training.data import LabelledImages, split_by_signer
from signdigits.training.evaluate import evaluate_probabilities
from signdigits.training.export_onnx import export_onnx
from signdigits.training.fit import (
    Recipe,
    Report,
    fit_classifier,
    predict_logits,
    recipe_differences,
)
from signdigits.training.labels import NPY_CLASS_TO_DIGIT

__all__ = ["Recipe", "train_model", "CrossValidationMismatch"]


class CrossValidationMismatch(ValueError):
    """The cross-validation result was made with other data or another recipe."""


def check_cv_result(cv: dict[str, Any], data: LabelledImages, recipe: Recipe) -> None:
    if cv.get("data_digest") != data.digest():
        raise CrossValidationMismatch("the cross-validation was run on other data (digest differs)")
    differences = recipe_differences(cv.get("recipe"), recipe)
    if differences:
        raise CrossValidationMismatch(f"the cross-validation used another recipe: "
                                      f"{', '.join(differences)}")


def train_model(
    data: LabelledImages,
    *,
    out: Path,
    recipe: Recipe,
    command: str,
    report: Report = print,
    folds: int = 0,
    cv_result: dict[str, Any] | None = None,
) -> ModelInfo:
    """Fit, calibrate on held-out signers, score once on the test signers, save."""
    from signdigits.config.settings import get_settings
    from signdigits.serving.hands.features import FEATURES_VERSION
    from signdigits.serving.hands.models import check_models, models_dir
    from signdigits.training.familiarity import familiar_from
    from signdigits.training.model import build_inference_model

    if folds and cv_result is None:
        cv_result = cross_validate(data, recipe, folds=folds, report=report)
    if cv_result is not None:
        check_cv_result(cv_result, data, recipe)
        dev_idx, test_idx = development_indices(data, recipe)
        fit_on, val, test = data.subset(dev_idx), None, data.subset(test_idx)
        calibration = cv_result["calibration"]
        report(
            f"fitting on all {len(fit_on)} development images; temperature "
            f"{calibration['temperature']} and threshold {calibration['threshold']} from the "
            f"{cv_result['folds']}-fold out-of-fold predictions"
        )
    else:
        train_idx, val_idx, test_idx = split_by_signer(
            data.groups,
            seed=recipe.seed,
            val_fraction=recipe.val_fraction,
            test_fraction=recipe.test_fraction,
        )
        fit_on, val, test = data.subset(train_idx), data.subset(val_idx), data.subset(test_idx)
        report(
            f"split by signer (seed {recipe.seed}): train {len(fit_on)}, "
            f"validation {len(val)}, test {len(test)} images"
        )

    empty = [name for name, part in (("training", fit_on), ("validation", val), ("test", test))
             if part is not None and not len(part)]
    if empty:  # else Keras's "decay_steps must be > 0", after the data was read
        raise ValueError(f"{len(data)} images of {len(np.unique(data.groups))} signers leave "
                         f"no {' or '.join(empty)} images after the split by signer (it "
                         "needs photos of at least 3 signers)")
    logits_model, history = fit_classifier(fit_on, recipe, report=report)
    val_figures = None
    if cv_result is None:
        assert val is not None  # without a CV result the split above made one
        val_logits = predict_logits(logits_model, val)
        calibration = calibration_summary(val_logits[val.found], val.classes[val.found])
        val_figures = evaluate_probabilities(
            _probabilities(val_logits, val.found, calibration["temperature"]), val.classes,
            NPY_CLASS_TO_DIGIT)
    temperature, threshold = calibration["temperature"], calibration["threshold"]
    familiar = familiar_from(fit_on.x[fit_on.found])
    served = build_inference_model(logits_model, temperature, familiar)

    test_logits = predict_logits(logits_model, test)
    test_probs = _probabilities(test_logits, test.found, temperature)
    test_figures = evaluate_probabilities(test_probs, test.classes, NPY_CLASS_TO_DIGIT)
    test_figures["ece"] = expected_calibration_error(test_probs, test.classes)
    test_figures["ece_uncalibrated"] = expected_calibration_error(
        _probabilities(test_logits, test.found, 1.0), test.classes
    )
    test_figures["at_threshold"] = selective_point(test_probs, test.classes, threshold)
    at = test_figures["at_threshold"]
    report(
        f"test (signers never seen, used once): accuracy {test_figures['accuracy']:.4f}, "
        f"loss {test_figures['loss']:.4f}, ECE {test_figures['ece']:.4f}; at the default "
        f"threshold {threshold}: coverage {at['coverage']:.4f}, accuracy {at['accuracy']:.4f}"
    )
    held_out = f"{cv_result['folds']}-fold out-of-fold" if cv_result else "validation"
    def without_confusion(figures: dict[str, Any] | None) -> dict[str, Any] | None:
        return figures and {k: v for k, v in figures.items() if k != "confusion"}

    metadata = {
        "class_to_digit": list(NPY_CLASS_TO_DIGIT),
        "data_digest": data.digest(),
        "photos_digest": data.photos_digest(),
        # The landmarks the features were made from: a reader with other hand models is
        # refused (serving.reader).
        "hand_models": check_models(models_dir(get_settings().hand_models_dir)),
        "features_version": FEATURES_VERSION,
        "photos_without_hand": int((~data.found).sum()),
        "training_command": command,
        "recipe": recipe.__dict__,
        "split": {
            "by": "signer",
            "train_images": len(fit_on),
            "validation_images": len(val) if val is not None else 0,
            "test_images": len(test),
            "test_groups": sorted({int(g) for g in test.groups}),
        },
        "default_threshold": threshold,
        "temperature": temperature,
        "threshold_rule": (
            f"lowest threshold (step 0.005) whose accepted {held_out} images are >= "
            f"{TARGET_SELECTIVE_ACCURACY:.1%} correct (target: >= {TARGET_COVERAGE:.0%} "
            "accepted)" + ("" if calibration.get("target_reached", True) else
                           "; not reached at any threshold: the highest step is used")
        ),
        "calibration": {"on": held_out, **calibration},
        "familiarity": familiar.summary(
            test_unfamiliar=int(familiar.unfamiliar(test.x[test.found]).sum())),
        "evaluation": {
            "test": without_confusion(test_figures),
            "validation": without_confusion(val_figures),
            "cross_validation": cv_result and {
                k: cv_result[k] for k in ("folds", "images", "no_hand", "accuracy", "errors",
                                          "fold_accuracy")
            },
        },
        "history": history,
    }
    save_artifact(served, out, metadata)
    return export_onnx(out)  # the ONNX graph beside it; one version stamped on both


def _probabilities(logits: np.ndarray, found: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities; all zeros for a photo without a hand (as served: no
    answer, confidence 0)."""
    probs = softmax(logits, temperature)
    probs[~found] = 0.0
    return probs
