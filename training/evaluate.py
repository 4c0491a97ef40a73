"""Figures for a model on labelled data, and the report folder that shows them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from training.labels import NUM_CLASSES

# The default threshold is the lowest at which the accepted images are this accurate.
TARGET_SELECTIVE_ACCURACY = 0.995


def evaluate_probabilities(
    probs: np.ndarray, classes: np.ndarray, class_to_digit: tuple[int, ...]
) -> dict[str, Any]:
    """Accuracy, log loss, per-digit precision/recall and the confusion matrix (by digit)."""
    table = np.asarray(class_to_digit)
    predicted = table[probs.argmax(axis=1)]
    truth = table[classes]
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(classes)), classes], eps, 1))))
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    per_digit = {}
    for digit in range(NUM_CLASSES):
        tp = int(confusion[digit, digit])
        predicted_as = int(confusion[:, digit].sum())
        actual = int(confusion[digit].sum())
        per_digit[str(digit)] = {
            "precision": round(tp / predicted_as, 4) if predicted_as else None,
            "recall": round(tp / actual, 4) if actual else None,
            "support": actual,
        }
    return {
        "images": len(classes),
        "accuracy": round(float(np.mean(predicted == truth)), 4) if len(classes) else 0.0,
        "loss": round(loss, 4),
        "per_digit": per_digit,
        "confusion": confusion.tolist(),
    }


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


def choose_threshold(curve: list[dict[str, float]]) -> float:
    """Lowest threshold whose accepted images reach :data:`TARGET_SELECTIVE_ACCURACY`."""
    for point in curve:
        if point["accuracy"] >= TARGET_SELECTIVE_ACCURACY:
            return point["threshold"]
    return curve[-1]["threshold"]


def write_report(
    folder: Path,
    figures: dict[str, Any],
    curve: list[dict[str, float]],
    history: dict[str, list[float]] | None,
) -> None:
    """confusion.png, learning_curves.png, selective_accuracy.png/.csv and figures.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(thresholds, [p["accuracy"] for p in curve], label="accuracy of accepted")
    ax.plot(thresholds, [p["coverage"] for p in curve], label="share accepted")
    ax.set(xlabel="confidence threshold", ylim=(0, 1.01))
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "selective_accuracy.png", dpi=100)
    plt.close(fig)
    rows = ["threshold,coverage,accuracy"]
    rows += [f"{p['threshold']:.2f},{p['coverage']},{p['accuracy']}" for p in curve]
    (folder / "selective_accuracy.csv").write_text("\n".join(rows) + "\n")

    if history:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for key in ("loss", "val_loss"):
            if key in history:
                left.plot(history[key], label=key)
        for key in ("accuracy", "val_accuracy"):
            if key in history:
                right.plot(history[key], label=key)
        left.set(xlabel="epoch", title="loss")
        right.set(xlabel="epoch", title="accuracy")
        left.legend()
        right.legend()
        fig.tight_layout()
        fig.savefig(folder / "learning_curves.png", dpi=100)
        plt.close(fig)
