"""Signer-grouped k-fold cross-validation on the training signers.

The signer split of :func:`training.data.split_by_signer` sets the test signers aside;
the folds cover every other signer (the split's train and validation signers), each
signer in exactly one fold. Each fold's network is trained on the other folds for the
recipe's fixed number of epochs (no early stopping: there is no validation set to peek
at), and predicts its own fold: the out-of-fold predictions cover every training signer
once, from a network that never saw them. The recipe, the calibration temperature and
the default threshold are chosen on them; the test split is not touched here.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from signdigits.training.calibration import calibration_summary
from signdigits.training.data import LabelledImages, split_by_signer
from signdigits.training.fit import Recipe, Report, fit_members, images_per_second, predict_logits


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
    """Out-of-fold logits for the development signers, per-fold accuracy, calibration,
    multiply-adds per image and images/s of the served graph."""
    from signdigits.training.model import build_inference_model, build_mirror_logits, multiply_adds

    dev_idx, test_idx = development_indices(data, recipe)
    dev = data.subset(dev_idx)
    fold = signer_folds(dev.groups, folds, seed=recipe.seed)
    report(
        f"{folds}-fold CV by signer on {len(dev)} images of "
        f"{len(np.unique(dev.groups))} signers (test split of {len(test_idx)} set aside)"
    )
    logits = np.zeros((len(dev), 10), np.float32)
    fold_accuracy = []
    started = time.monotonic()
    networks: list = []
    for k in range(folds):
        held = np.flatnonzero(fold == k)
        fit_on = dev.subset(np.flatnonzero(fold != k))
        report(f"fold {k + 1}/{folds}: training on {len(fit_on)}, predicting {len(held)}")
        networks, _ = fit_members(fit_on, recipe, report=report, prefix=f"fold {k + 1}/{folds} ")
        logits[held] = predict_logits(build_mirror_logits(networks, recipe.architecture),
                                      dev.subset(held))
        accuracy = float(np.mean(logits[held].argmax(1) == dev.classes[held]))
        fold_accuracy.append(round(accuracy, 4))
        report(
            f"fold {k + 1}/{folds}: accuracy {accuracy:.4f} on {len(held)} held-out images "
            f"({time.monotonic() - started:.0f}s so far)"
        )
    calibration = calibration_summary(logits, dev.classes)
    served = build_inference_model(networks, recipe.architecture, calibration["temperature"])
    result = {
        "recipe": recipe.__dict__,
        "folds": folds,
        "data_digest": data.digest(),
        "images": len(dev),
        "accuracy": round(float(np.mean(logits.argmax(1) == dev.classes)), 4),
        "errors": int(np.sum(logits.argmax(1) != dev.classes)),
        "fold_accuracy": fold_accuracy,
        "calibration": calibration,
        "multiply_adds_per_image": multiply_adds(served),
        "images_per_second": images_per_second(served),
        "seconds": round(time.monotonic() - started, 1),
        "names": dev.names,
        "classes": dev.classes.tolist(),
        "logits": np.round(logits, 5).tolist(),
    }
    return result


def summary_line(result: dict[str, Any]) -> str:
    c = result["calibration"]
    at = c["at_threshold"]
    return (
        f"{result['recipe']['architecture']} x {result['recipe'].get('members', 1)} "
        f"network(s), {result['recipe']['epochs']} epochs, "
        f"{result['recipe'].get('augmentation', 'standard')} augmentation: "
        f"out-of-fold accuracy {result['accuracy']:.4f} ({result['errors']} wrong of "
        f"{result['images']}; folds {result['fold_accuracy']}), "
        f"{result['multiply_adds_per_image'] / 1e6:.1f} M multiply-adds/image, "
        f"{result['images_per_second']:.0f} images/s; temperature {c['temperature']}, "
        f"ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f}; threshold {c['threshold']}: "
        f"coverage {at['coverage']:.4f}, accuracy {at['accuracy']:.4f} "
        f"({at['accepted_wrong']} wrong accepted)"
    )
