"""One training run of the network (the recipe, augmentation, optimiser), shared by
``train`` and the cross-validation."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from signdigits.training.data import LabelledImages
from signdigits.training.labels import NUM_CLASSES

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
    architecture: str = "slim"  # the shipped model's; "original" is the first project's
    augmentation: str = "standard"  # training/architectures.py's AUGMENTATIONS
    members: int = 2  # networks averaged by the served graph, each from its own seed

    def __post_init__(self) -> None:
        if self.members < 1:
            raise ValueError(f"a recipe needs at least one network, not {self.members}")


# What a recipe recorded before a field existed had. Fixed here rather than read from the
# dataclass's defaults: were a default changed (to the CLI's 2 networks, say), reading it
# would make every older one-network CV result match a two-network training.
FIELDS_ADDED_LATER = {"augmentation": "standard", "members": 1}


def recipe_differences(recorded: object, recipe: Recipe) -> list[str]:
    """Where a recorded recipe (a CV result's) differs from ``recipe``, one
    'field recorded (this training: value)' each; empty when they are the same."""
    if not isinstance(recorded, dict):
        return ["none recorded"]
    full, this = {**FIELDS_ADDED_LATER, **recorded}, recipe.__dict__
    return [f"{name} {full.get(name)!r} (this training: {this.get(name)!r})"
            for name in sorted(set(full) | set(this)) if full.get(name) != this.get(name)]


def fit_network(
    train: LabelledImages,
    recipe: Recipe,
    *,
    val: LabelledImages | None = None,
    report: Report = print,
    prefix: str = "",
):
    """Fit a fresh network on ``train``; returns (model, history dict).

    With ``val`` the epoch with the best validation loss is kept; without it, the last
    (the learning rate has decayed to 1% by then, so the weights have settled).
    """
    import keras
    import tensorflow as tf

    from signdigits.training.model import augmenter, build_model

    keras.utils.set_random_seed(recipe.seed)
    augment = augmenter(recipe.seed, recipe.augmentation)

    def batches(part: LabelledImages, *, training: bool) -> tf.data.Dataset:
        onehot = np.eye(NUM_CLASSES, dtype=np.float32)[part.classes]
        ds = tf.data.Dataset.from_tensor_slices((part.x[..., None], onehot))
        if training:
            ds = ds.shuffle(len(part), seed=recipe.seed, reshuffle_each_iteration=True)
        ds = ds.batch(recipe.batch_size)
        if training:
            ds = ds.map(lambda x, y: (tf.clip_by_value(augment(x, training=True), 0, 1), y))
        return ds.prefetch(2)

    model = build_model(recipe.architecture)
    steps = recipe.epochs * int(np.ceil(len(train) / recipe.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(recipe.learning_rate, steps, alpha=0.01)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )
    keeper = keep_best_callback(report, recipe.epochs, prefix)
    use_val = val is not None and len(val) > 0
    history = model.fit(
        batches(train, training=True),
        validation_data=batches(val, training=False) if val is not None and use_val else None,
        epochs=recipe.epochs,
        verbose=0,
        callbacks=[keeper],
    )
    if keeper.best_weights is not None:
        model.set_weights(keeper.best_weights)
        report(f"{prefix}kept epoch {keeper.best_epoch} (best validation loss)")
    curves = {k: [round(float(v), 5) for v in vs] for k, vs in history.history.items()}
    return model, curves


def fit_members(
    train: LabelledImages,
    recipe: Recipe,
    *,
    val: LabelledImages | None = None,
    report: Report = print,
    prefix: str = "",
):
    """Fit the recipe's networks, each as :func:`fit_network` from its own seed (seed,
    seed + 100, ...: the first is the recipe's own, so one network trains as before
    members existed); returns (networks, the first network's history dict)."""
    import dataclasses

    fitted = []
    for m in range(recipe.members):
        tag = f"{prefix}network {m + 1}/{recipe.members} " if recipe.members > 1 else prefix
        fitted.append(fit_network(train, dataclasses.replace(recipe, seed=recipe.seed + 100 * m),
                                  val=val, report=report, prefix=tag))
    return [network for network, _ in fitted], fitted[0][1]


def keep_best_callback(report: Report, epochs: int, prefix: str = ""):
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
            line = f"{prefix}epoch {epoch + 1}/{epochs}: loss {logs.get('loss', 0):.4f} "
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


def predict_logits(model, part: LabelledImages) -> np.ndarray:
    """Mirror-averaged logits of a (logits) model on ``part``, in batches."""
    if not len(part):
        return np.zeros((0, NUM_CLASSES), np.float32)
    return model.predict(part.x[..., None], batch_size=256, verbose=0)


def images_per_second(model, *, images: int = 1024, batch: int = 64) -> float:
    """Forward passes of a traced ``model`` on random batches: images per second."""
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False))
    x = tf.constant(np.random.default_rng(0).random((batch, 64, 64, 1), np.float32))
    forward(x)
    forward(x)
    started = time.perf_counter()
    for _ in range(images // batch):
        forward(x)
    return round((images // batch) * batch / (time.perf_counter() - started), 1)
