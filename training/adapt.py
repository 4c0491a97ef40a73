"""``adapt``: fine-tune the serving model on a job's reviewed photos, in seconds.

The classifier is one linear layer over 265 hand features, so adapting it is a small
convex problem: start from the parent's weights and minimise, with full-batch Adam in
numpy, the cross-entropy of

- the dataset's development signers (replayed, so the studio accuracy does not drop),
- the reviewed hands (one per photo reviewed as a whole, one per hand answered in a photo
  reviewed hand by hand), each weighing :func:`review_weight` dataset photos,

plus a pull towards the parent's weights (``PULL``; a few reviews move the boundary, they
do not redraw it). The temperature and the default threshold are fitted again on
out-of-fold predictions of the development signers (:data:`CALIBRATION_FOLDS` fits, each
without one fold of signers), as ``train --cv`` fits them, and the test signers the
parent never saw are scored once. The pair is written like
``train``'s, its metadata holding the lineage: parent version, jobs, review count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from signdigits.serving.artifact import ModelInfo
from signdigits.serving.model_input import FEATURE_COUNT, NUM_CLASSES
from signdigits.training.calibration import (
    calibration_summary,
    expected_calibration_error,
    selective_point,
    softmax,
)
from signdigits.training.cv import signer_folds
from signdigits.training.data import LabelledImages, split_by_signer
from signdigits.training.evaluate import evaluate_probabilities
from signdigits.training.familiarity import Familiar, familiar_from

STEPS = 300
LEARNING_RATE = 0.02
PULL = 0.1  # L2 towards the parent's weights, standardised features: 0.01 lost 1 of 279 unseen
CALIBRATION_FOLDS = 5
SEED = 7

Report = Callable[[str], None]
Step = Callable[[int, int], None]


def review_weight(dataset_rows: int, reviews: int) -> float:
    """How many dataset photos one reviewed hand weighs: together the reviews weigh about
    a fifth of the dataset (a handful of them must move the boundary), never less than one
    photo each, never more than 20 (a single review must not swamp a digit)."""
    if reviews <= 0:
        return 1.0
    return float(min(20.0, max(1.0, dataset_rows / (5.0 * reviews))))


@dataclass(frozen=True)
class Linear:
    """A linear classifier on raw features: logits = x @ kernel + bias (class order)."""

    kernel: np.ndarray  # (FEATURE_COUNT, 10)
    bias: np.ndarray  # (10,)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64) @ self.kernel + self.bias


def parent_weights(onnx_path: Path, classes: int = NUM_CLASSES) -> Linear:
    """The served layer of an artifact (its temperature folded in, as model.py folds it),
    read from its ONNX graph's two initialisers: no TensorFlow needed."""
    import onnx
    from onnx import numpy_helper

    arrays = [numpy_helper.to_array(t).astype(np.float64)
              for t in onnx.load(str(onnx_path)).graph.initializer]
    # By shape: the familiarity step's constants (serving.familiar) are initialisers too,
    # its references (features x references) the only other matrix.
    kernels = [a for a in arrays if a.ndim == 2 and a.shape == (FEATURE_COUNT, classes)]
    biases = [a for a in arrays if a.ndim == 1 and a.shape == (classes,)]
    if len(kernels) != 1 or len(biases) != 1:
        raise ValueError(f"{onnx_path}: not the one-layer classifier adapt fine-tunes")
    return Linear(kernels[0], biases[0])


def fine_tune(parent: Linear, x: np.ndarray, classes: np.ndarray, weights: np.ndarray, *,
              mean: np.ndarray, std: np.ndarray, steps: int = STEPS,
              step: Step | None = None) -> Linear:
    """Weighted cross-entropy plus PULL/2 |V - V_parent|^2, on standardised features, from
    the parent's weights. Returns raw-feature logits (no temperature)."""
    z = (np.asarray(x, np.float64) - mean) / std
    v0 = parent.kernel * std[:, None]
    c0 = parent.bias + mean @ parent.kernel
    v, c = v0.copy(), c0.copy()
    w = weights / weights.sum()
    onehot = np.eye(v.shape[1])[classes]
    moments = [np.zeros_like(v), np.zeros_like(v), np.zeros_like(c), np.zeros_like(c)]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, steps + 1):
        p = softmax(z @ v + c)
        err = (p - onehot) * w[:, None]
        grads = (z.T @ err + PULL * (v - v0), err.sum(axis=0))
        for k, (param, grad) in enumerate(zip((v, c), grads, strict=True)):
            m, s = moments[2 * k], moments[2 * k + 1]
            m *= beta1
            m += (1 - beta1) * grad
            s *= beta2
            s += (1 - beta2) * grad * grad
            param -= LEARNING_RATE * (m / (1 - beta1**t)) / (np.sqrt(s / (1 - beta2**t)) + eps)
        if step is not None and (t % 20 == 0 or t == steps):
            step(t, steps)
    return Linear(v / std[:, None], c - (mean / std) @ v)


def _probabilities(model: Linear, part: LabelledImages, temperature: float) -> np.ndarray:
    probs = np.zeros((len(part), model.bias.shape[0]))
    if part.found.any():
        probs[part.found] = softmax(model.logits(part.x[part.found]), temperature)
    return probs


@dataclass(frozen=True)
class Adapted:
    info: ModelInfo
    figures: dict[str, Any]  # what `models list` and the Models page show


def adapt(parent: ModelInfo, dataset: LabelledImages, reviewed_x: np.ndarray,
          reviewed_classes: np.ndarray, *, out: Path, lineage: dict[str, Any], command: str,
          report: Report = print, step: Step | None = None) -> Adapted:
    """Fine-tune ``parent`` and write the pair at ``out`` (``.keras`` and ``.onnx``)."""
    from signdigits.serving.artifact import save_artifact
    from signdigits.training.export_onnx import export_onnx

    if parent.onnx_path is None:
        raise ValueError(f"{parent.path}: adapting needs the parent's .onnx graph")
    start = parent_weights(parent.onnx_path)
    # The fit is in the parent's output order; the dataset numbers its classes its own way.
    to_parent = {d: i for i, d in enumerate(parent.class_to_digit)}
    dataset = dataclasses.replace(dataset, classes=np.array(
        [to_parent[int(d)] for d in dataset.digits], dtype=np.int64))
    test_groups = set((parent.metadata.get("split") or {}).get("test_groups") or [])
    if not test_groups:
        _, _, test_idx = split_by_signer(dataset.groups, seed=SEED)
        test_groups = {int(g) for g in dataset.groups[test_idx]}
    is_test = np.isin(dataset.groups, list(test_groups))
    development = dataset.subset(np.flatnonzero(~is_test))
    test = dataset.subset(np.flatnonzero(is_test))
    x_data, y_data = development.x[development.found], development.classes[development.found]
    groups = development.groups[development.found]
    weight = review_weight(len(x_data), len(reviewed_x))
    mean, std = x_data.mean(axis=0), np.maximum(x_data.std(axis=0), 1e-3)
    report(f"fine-tuning on {len(x_data)} dataset hands and {len(reviewed_x)} reviewed hands "
           f"(each weighing {weight:.1f}), from {parent.version}; calibrating on "
           f"{CALIBRATION_FOLDS}-fold out-of-fold predictions by signer")

    def tuned_on(keep: np.ndarray, done: int) -> Linear:
        x = np.concatenate([x_data[keep], reviewed_x])
        y = np.concatenate([y_data[keep], reviewed_classes])
        weights = np.concatenate([np.ones(int(keep.sum())), np.full(len(reviewed_x), weight)])
        return fine_tune(start, x, y, weights, mean=mean, std=std,
                         step=(lambda n, t: step(done + n, (CALIBRATION_FOLDS + 1) * t))
                         if step else None)

    # As `train --cv` calibrates: each signer's photos predicted by a fit that never saw
    # them (a held-out slice alone was all right, and the temperature ran to its floor).
    folds = signer_folds(groups, CALIBRATION_FOLDS, seed=SEED)
    out_of_fold = np.zeros((len(x_data), start.bias.shape[0]))
    for fold in range(CALIBRATION_FOLDS):
        out_of_fold[folds == fold] = tuned_on(folds != fold, fold * STEPS).logits(
            x_data[folds == fold])
    calibration = calibration_summary(out_of_fold, y_data)
    tuned = tuned_on(np.ones(len(x_data), bool), CALIBRATION_FOLDS * STEPS)
    temperature, threshold = calibration["temperature"], calibration["threshold"]
    table = parent.class_to_digit
    parent_temperature = 1.0  # the parent's layer already holds its temperature
    before = evaluate_probabilities(_probabilities(start, test, parent_temperature),
                                    test.classes, table)
    test_probs = _probabilities(tuned, test, temperature)
    after = evaluate_probabilities(test_probs, test.classes, table)
    after["ece"] = expected_calibration_error(test_probs, test.classes)
    after["at_threshold"] = selective_point(test_probs, test.classes, threshold)
    reviewed_right = {
        "before": _right(start.logits(reviewed_x), reviewed_classes),
        "after": _right(tuned.logits(reviewed_x), reviewed_classes),
    }
    report(f"dataset test signers: {before['accuracy']:.2%} before, {after['accuracy']:.2%} "
           f"after; reviewed hands right: {reviewed_right['before']} before, "
           f"{reviewed_right['after']} after (of {len(reviewed_x)}); temperature "
           f"{temperature}, default threshold {threshold}")

    # The reviewed hands join the references: the population a person corrected is
    # familiar to the model that learnt it.
    familiar = familiar_from(np.concatenate([x_data, reviewed_x]))
    kernel = (tuned.kernel / temperature).astype(np.float32)
    bias = (tuned.bias / temperature).astype(np.float32)
    evaluation = {"test": {k: v for k, v in after.items() if k != "confusion"},
                  "test_before": {k: v for k, v in before.items() if k != "confusion"},
                  "reviewed_right": reviewed_right, "reviewed": int(len(reviewed_x))}
    metadata = {
        **{k: parent.metadata[k] for k in ("class_to_digit", "hand_models", "features_version")},
        "data_digest": dataset.digest(),
        "training_command": command,
        "default_threshold": threshold,
        "temperature": temperature,
        "calibration": {"on": f"{CALIBRATION_FOLDS}-fold out-of-fold", **calibration},
        "split": {"by": "signer", "train_images": len(development),
                  "validation_images": 0, "test_images": len(test),
                  "test_groups": sorted(int(g) for g in test_groups)},
        "adapted": {"steps": STEPS, "learning_rate": LEARNING_RATE, "pull": PULL,
                    "review_weight": round(weight, 3)},
        "lineage": {"parent": parent.version, **lineage},
        "evaluation": evaluation,
        "familiarity": familiar.summary(
            test_unfamiliar=int(familiar.unfamiliar(test.x[test.found]).sum())),
    }
    save_artifact(served_model(kernel, bias, familiar), out, metadata)
    info = export_onnx(out)
    return Adapted(info, {"evaluation": evaluation, "lineage": metadata["lineage"],
                          "default_threshold": threshold})


def _right(logits: np.ndarray, classes: np.ndarray) -> int:
    return int((logits.argmax(axis=1) == classes).sum()) if len(classes) else 0


def served_model(kernel: np.ndarray, bias: np.ndarray, familiar: Familiar | None = None):
    """The served graph of model.build_inference_model: one dense softmax layer, then
    the familiarity step."""
    from signdigits.training.model import served_graph

    return served_graph(kernel, bias, familiar)
