"""Figures for a model on labelled data, and the report folder that shows them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from signdigits.training.data import LabelledImages
from signdigits.training.labels import NUM_CLASSES


def evaluate_probabilities(
    probs: np.ndarray, classes: np.ndarray, class_to_digit: tuple[int, ...]
) -> dict[str, Any]:
    """Accuracy, log loss, per-digit precision/recall and the confusion matrix (by digit);
    ``classes`` numbered as the model numbers its outputs. A photo where no hand was found
    has all-zero probabilities: it counts as wrong, and in ``no_hand``; the loss and the
    confusion matrix are over the photos with a hand."""
    table = np.asarray(class_to_digit)
    hand = probs.max(axis=1) > 0
    predicted = np.where(hand, table[probs.argmax(axis=1)], -1)
    truth = table[classes]
    eps = 1e-7
    picked = probs[np.arange(len(classes)), classes][hand]
    loss = float(-np.mean(np.log(np.clip(picked, eps, 1)))) if hand.any() else 0.0
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    np.add.at(confusion, (truth[hand], predicted[hand]), 1)
    per_digit = {}
    for digit in range(NUM_CLASSES):
        tp = int(confusion[digit, digit])
        predicted_as = int(confusion[:, digit].sum())
        actual = int(confusion[digit].sum())
        per_digit[str(digit)] = {
            "precision": round(tp / predicted_as, 4) if predicted_as else None,
            "recall": round(tp / int((truth == digit).sum()), 4) if actual else None,
            "support": int((truth == digit).sum()),
        }
    return {
        "images": len(classes),
        "no_hand": int((~hand).sum()),
        "accuracy": round(float(np.mean(predicted == truth)), 4) if len(classes) else 0.0,
        "loss": round(loss, 4),
        "per_digit": per_digit,
        "confusion": confusion.tolist(),
    }


def score_model(probs: np.ndarray, classes: np.ndarray, class_to_digit: tuple[int, ...],
                threshold: float) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """``evaluate``'s figures and selective curve for a model's ``probs`` on labelled data
    (``classes`` in the dataset's order, converted here to the model's own)."""
    from signdigits.training.calibration import expected_calibration_error, selective_point
    from signdigits.training.labels import in_model_order

    classes = in_model_order(classes, class_to_digit)
    figures = evaluate_probabilities(probs, classes, class_to_digit)
    figures["ece"] = expected_calibration_error(probs, classes)
    figures["at_threshold"] = selective_point(probs, classes, threshold)
    return figures, selective_curve(probs, classes)


def selective_curve(probs: np.ndarray, classes: np.ndarray) -> list[dict[str, float]]:
    """For thresholds 0.00..0.99: accuracy of images at or above it, and their share."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == classes
    curve = []
    for threshold in np.round(np.arange(0.0, 1.0, 0.01), 2):
        accepted = confidence >= threshold
        n = int(accepted.sum())
        curve.append(
            {
                "threshold": float(threshold),
                "coverage": round(n / len(classes), 4) if len(classes) else 0.0,
                "accuracy": round(float(correct[accepted].mean()), 4) if n else 1.0,
            }
        )
    return curve


def write_report(
    folder: Path,
    figures: dict[str, Any],
    curve: list[dict[str, float]],
    history: dict[str, Any] | None,
    threshold: float | None = None,
) -> None:
    """confusion.png, learning_curves.png, selective_accuracy.png/.csv and figures.json.

    The selective-accuracy plot shows accuracy from 95% to 100% (where 99% and 100% are
    far apart), the share accepted on its own axis, and the default ``threshold``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "figures.json").write_text(json.dumps(figures, indent=2))

    confusion = np.asarray(figures["confusion"])
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(confusion, cmap="Blues")
    for (i, j), n in np.ndenumerate(confusion):
        if n:
            colour = "white" if n > confusion.max() / 2 else "black"
            ax.text(j, i, str(n), ha="center", va="center", color=colour, fontsize=8)
    ax.set(xlabel="predicted digit", ylabel="true digit", xticks=range(10), yticks=range(10))
    ax.set_title(f"accuracy {figures['accuracy']:.4f} on {figures['images']} images")
    fig.tight_layout()
    fig.savefig(folder / "confusion.png", dpi=100)
    plt.close(fig)

    thresholds = [p["threshold"] for p in curve]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(thresholds, [p["accuracy"] for p in curve], color="tab:blue",
            label="accuracy of accepted (left)")
    ax.set(xlabel="confidence threshold", ylabel="accuracy of accepted", ylim=(0.95, 1.0005))
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=1))
    ax.grid(alpha=0.3)
    share = ax.twinx()
    share.plot(thresholds, [p["coverage"] for p in curve], color="tab:orange",
               label="share accepted (right)")
    share.set(ylabel="share accepted", ylim=(0, 1.01))
    share.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
    if threshold is not None:
        ax.axvline(threshold, color="tab:red", linestyle="--", label=f"default {threshold:g}")
        ax.axhline(0.998, color="grey", linestyle=":", label="99.8%")
    lines = ax.get_legend_handles_labels()
    more = share.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower left", fontsize=8)
    ax.set_title("selective accuracy (accuracy below 95% is off the chart)", fontsize=9)
    fig.tight_layout()
    fig.savefig(folder / "selective_accuracy.png", dpi=100)
    plt.close(fig)
    rows = ["threshold,coverage,accuracy"]
    rows += [f"{p['threshold']:.2f},{p['coverage']},{p['accuracy']}" for p in curve]
    (folder / "selective_accuracy.csv").write_text("\n".join(rows) + "\n")

    if history and history.get("loss"):
        # The full-batch training loss, one point per loss_every steps (the artifacts of
        # this training have no validation loss or accuracy to show beside it: the
        # held-out figures are the cross-validation's, in the metadata).
        every = history.get("loss_every", 50)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(np.arange(len(history["loss"])) * every, history["loss"], marker=".")
        ax.set(xlabel="step", ylabel="training loss", title="training loss")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(folder / "learning_curves.png", dpi=100)
        plt.close(fig)


def same_photos_as_trained(images: LabelledImages, meta: dict[str, Any]) -> bool:
    """The photos the model was trained on, though what is read of them differs (features
    change with the hand finder): by their names, labels and signers where the model
    records them; else, for a model trained before it did, by the split's counts."""
    if "photos_digest" in meta:
        return images.photos_digest() == meta["photos_digest"]
    counts = meta.get("split", {})
    total = sum(int(counts.get(k) or 0) for k in ("train_images", "validation_images",
                                                   "test_images"))
    in_test = int(np.isin(images.groups, list(counts.get("test_groups", []))).sum())
    return bool(counts) and total == len(images) and in_test == counts.get("test_images")
