"""Signer-grouped k-fold cross-validation on the training signers.

The signer split of :func:`training.data.split_by_signer` sets the test signers aside;
the folds cover every other signer (the split's train and validation signers), each
signer in exactly one fold. Each fold's classifier is trained on the other folds for the
recipe's fixed number of epochs (no early stopping: there is no validation set to peek
at), and predicts its own fold: the out-of-fold predictions cover every training signer
once, from a classifier that never saw them. The recipe, the calibration temperature and
the default threshold are chosen on them; the test split is not touched here.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from signdigits.training.calibration import calibration_summary
from signdigits.training.data import LabelledImages, split_by_signer
from signdigits.training.fit import Recipe, Report, fit_classifier, predict_logits


def development_indices(data: LabelledImages, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """(train + validation indices, test indices) of the recipe's signer split."""
    train_idx, val_idx, test_idx = split_by_signer(
        data.groups,
        seed=recipe.seed,
        val_fraction=recipe.val_fraction,
        test_fraction=recipe.test_fraction,
    )
    return np.sort(np.concatenate([train_idx, val_idx])), test_idx


def signer_folds(groups: np.ndarray, folds: int, *, seed: int) -> np.ndarray:
    """Fold number (0..folds-1) per image; every signer in one fold, folds near equal in
    images (signers dealt largest first to the fold with the fewest images so far)."""
    unique, counts = np.unique(groups, return_counts=True)
    if folds < 2 or folds > len(unique):
        raise ValueError(f"{folds} folds need 2..{len(unique)} (the number of signers)")
    order = np.random.default_rng(seed).permutation(len(unique))
    order = order[np.argsort(-counts[order], kind="stable")]
    sizes = np.zeros(folds, np.int64)
    fold_of_group = {}
    for i in order:
        f = int(np.argmin(sizes))
        fold_of_group[int(unique[i])] = f
        sizes[f] += counts[i]
    return np.array([fold_of_group[int(g)] for g in groups.tolist()], np.int64)


def cross_validate(
    data: LabelledImages, recipe: Recipe, *, folds: int, report: Report = print
) -> dict[str, Any]:
    """Out-of-fold logits for the development signers, per-fold accuracy and the
    calibration (temperature, default threshold) chosen on them."""
    dev_idx, test_idx = development_indices(data, recipe)
    dev = data.subset(dev_idx)
    fold = signer_folds(dev.groups, folds, seed=recipe.seed)
    report(
        f"{folds}-fold CV by signer on {len(dev)} photos of "
        f"{len(np.unique(dev.groups))} signers (test split of {len(test_idx)} set aside)"
    )
    logits = np.zeros((len(dev), 10), np.float32)
    fold_accuracy = []
    started = time.monotonic()
    for k in range(folds):
        held = np.flatnonzero(fold == k)
        fit_on = dev.subset(np.flatnonzero(fold != k))
        model, _ = fit_classifier(fit_on, recipe, report=report, prefix=f"fold {k + 1}/{folds}: ")
        logits[held] = predict_logits(model, dev.subset(held))
        right = (logits[held].argmax(1) == dev.classes[held]) & dev.found[held]
        fold_accuracy.append(round(float(np.mean(right)), 4))
        report(f"fold {k + 1}/{folds}: accuracy {fold_accuracy[-1]:.4f} on {len(held)} "
               f"held-out photos ({time.monotonic() - started:.0f}s so far)")
    right = (logits.argmax(1) == dev.classes) & dev.found
    return {
        "recipe": recipe.__dict__,
        "folds": folds,
        "data_digest": data.digest(),
        "images": len(dev),
        "no_hand": int((~dev.found).sum()),
        "accuracy": round(float(np.mean(right)), 4),
        "errors": int(np.sum(~right)),
        "fold_accuracy": fold_accuracy,
        # On the photos with a hand: a photo without one is below any threshold anyway.
        "calibration": calibration_summary(logits[dev.found], dev.classes[dev.found]),
        "seconds": round(time.monotonic() - started, 1),
        "names": dev.names,
        "classes": dev.classes.tolist(),
        "found": dev.found.tolist(),
        "logits": np.round(logits, 5).tolist(),
    }


def summary_line(result: dict[str, Any]) -> str:
    c = result["calibration"]
    at = c["at_threshold"]
    return (
        f"out-of-fold accuracy {result['accuracy']:.4f} ({result['errors']} wrong of "
        f"{result['images']}, {result['no_hand']} without a hand found; folds "
        f"{result['fold_accuracy']}); temperature {c['temperature']}, ECE "
        f"{c['ece_before']:.4f} -> {c['ece_after']:.4f}; threshold {c['threshold']}: coverage "
        f"{at['coverage']:.4f}, accuracy {at['accuracy']:.4f} ({at['accepted_wrong']} wrong "
        "accepted)"
    )
