"""Train the CNN on labelled images and save a self-describing artifact."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.artifact import ModelInfo, save_artifact
from training.data import LabelledImages, split_by_signer
from training.evaluate import choose_threshold, evaluate_probabilities, selective_curve
from training.export_onnx import export_onnx
from training.labels import NPY_CLASS_TO_DIGIT, NUM_CLASSES

Report = Callable[[str], None]


@dataclass(frozen=True)
class Recipe:
    epochs: int = 120
    batch_size: int = 32
    learning_rate: float = 1e-3
    label_smoothing: float = 0.05
    seed: int = 7
    val_fraction: float = 0.15
    test_fraction: float = 0.15


def train_model(
    data: LabelledImages,
    *,
    out: Path,
    recipe: Recipe,
    command: str,
    report: Report = print,
) -> ModelInfo:
    """Fit on the training signers, pick the epoch on validation, score on test, save."""
    import keras
    import tensorflow as tf

    from training.model import augmenter, build_inference_model, build_model

    keras.utils.set_random_seed(recipe.seed)
    train_idx, val_idx, test_idx = split_by_signer(
        data.groups,
        seed=recipe.seed,
        val_fraction=recipe.val_fraction,
        test_fraction=recipe.test_fraction,
    )
    train, val, test = data.subset(train_idx), data.subset(val_idx), data.subset(test_idx)
    report(
        f"split by signer (seed {recipe.seed}): train {len(train)}, "
        f"validation {len(val)}, test {len(test)} images"
    )

    augment = augmenter(recipe.seed)

    def batches(part: LabelledImages, *, training: bool) -> tf.data.Dataset:
        onehot = np.eye(NUM_CLASSES, dtype=np.float32)[part.classes]
        ds = tf.data.Dataset.from_tensor_slices((part.x[..., None], onehot))
        if training:
            ds = ds.shuffle(len(part), seed=recipe.seed, reshuffle_each_iteration=True)
        ds = ds.batch(recipe.batch_size)
        if training:
            ds = ds.map(lambda x, y: (tf.clip_by_value(augment(x, training=True), 0, 1), y))
        return ds.prefetch(2)

    model = build_model()
    steps = recipe.epochs * int(np.ceil(len(train) / recipe.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(recipe.learning_rate, steps, alpha=0.01)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )
    keeper = keep_best_callback(report, recipe.epochs)
    history = model.fit(
        batches(train, training=True),
        validation_data=batches(val, training=False) if len(val) else None,
        epochs=recipe.epochs,
        verbose=0,
        callbacks=[keeper],
    )
    if keeper.best_weights is not None:
        model.set_weights(keeper.best_weights)
        report(f"kept epoch {keeper.best_epoch} (best validation loss)")

    served = build_inference_model(model)

    def probabilities(part: LabelledImages) -> np.ndarray:
        if not len(part):
            return np.zeros((0, NUM_CLASSES), np.float32)
        return served.predict(part.x[..., None], batch_size=256, verbose=0)

    val_probs = probabilities(val)
    threshold = choose_threshold(selective_curve(val_probs, val.classes)) if len(val) else 0.5
    test_probs = probabilities(test)
    test_figures = evaluate_probabilities(test_probs, test.classes, NPY_CLASS_TO_DIGIT)
    report(
        f"test (signers never seen): accuracy {test_figures['accuracy']:.4f}, "
        f"loss {test_figures['loss']:.4f}; default threshold {threshold:.2f}"
    )
    metadata = {
        "class_to_digit": list(NPY_CLASS_TO_DIGIT),
        "data_digest": data.digest(),
        "training_command": command,
        "recipe": recipe.__dict__,
        "split": {
            "by": "signer",
            "train_images": len(train),
            "validation_images": len(val),
            "test_images": len(test),
            "test_groups": sorted({int(g) for g in test.groups}),
        },
        "default_threshold": threshold,
        "threshold_rule": "lowest threshold whose accepted validation images are >= 99.5% correct",
        "evaluation": {
            "test": {k: v for k, v in test_figures.items() if k != "confusion"},
            "validation": evaluate_probabilities(val_probs, val.classes, NPY_CLASS_TO_DIGIT)
            if len(val)
            else None,
        },
        "history": {k: [round(float(v), 5) for v in vs] for k, vs in history.history.items()},
    }
    save_artifact(served, out, metadata)
    return export_onnx(out)  # the ONNX graph beside it; one version stamped on both


def keep_best_callback(report: Report, epochs: int):
    """A callback that prints one line per epoch and keeps the best-validation weights.

    Defined inside a function so that importing this module does not import Keras.
    """
    import keras

    class KeepBest(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best_loss = np.inf
            self.best_weights = None
            self.best_epoch = 0
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            line = f"epoch {epoch + 1}/{epochs}: loss {logs.get('loss', 0):.4f} "
            line += f"accuracy {logs.get('accuracy', 0):.4f}"
            if "val_loss" in logs:
                line += f" | val_loss {logs['val_loss']:.4f} "
                line += f"val_accuracy {logs['val_accuracy']:.4f}"
                if logs["val_loss"] < self.best_loss:
                    self.best_loss = logs["val_loss"]
                    self.best_weights = self.model.get_weights()
                    self.best_epoch = epoch + 1
            report(f"{line} ({time.monotonic() - self.started:.0f}s)")

    return KeepBest()
