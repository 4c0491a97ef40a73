"""One fit of the classifier (the recipe and the optimiser), shared by ``train`` and the
cross-validation. The rows are the photos' hands as served; a photo without one is left
out of the fit (and below any threshold when served)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from signdigits.training.data import LabelledImages

Report = Callable[[str], None]
# The artifact's history keeps the training loss of every LOSS_EVERY-th step.
LOSS_EVERY = 50


@dataclass(frozen=True)
class Recipe:
    epochs: int = 600  # full-batch steps: the loss is flat well before
    learning_rate: float = 0.05
    l2: float = 0.01
    seed: int = 7
    val_fraction: float = 0.15
    test_fraction: float = 0.15


def recipe_differences(recorded: object, recipe: Recipe) -> list[str]:
    """Where a recorded recipe (a CV result's) differs from ``recipe``, one
    'field recorded (this training: value)' each; empty when they are the same."""
    if not isinstance(recorded, dict):
        return ["none recorded"]
    this = recipe.__dict__
    return [f"{name} {recorded.get(name)!r} (this training: {this.get(name)!r})"
            for name in sorted(set(recorded) | set(this)) if recorded.get(name) != this.get(name)]


def fit_classifier(train: LabelledImages, recipe: Recipe, *, report: Report = print,
                   prefix: str = ""):
    """Fit a fresh logits model on ``train``'s hands; returns (model, history dict)."""
    from signdigits.serving.classifier import import_tensorflow

    import_tensorflow()
    import keras

    from signdigits.training.model import build_logits_model

    x, y = train.x[train.found], train.classes[train.found]
    if not len(x):
        raise ValueError("no hand was found in any training photo")
    keras.utils.set_random_seed(recipe.seed)
    model = build_logits_model(x, l2=recipe.l2)
    model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=len(x), epochs=recipe.epochs, verbose=0)
    loss, accuracy = history.history["loss"][-1], history.history["accuracy"][-1]
    report(f"{prefix}fitted on {len(x)} hands ({len(train)} photos): loss {loss:.4f}, "
           f"accuracy {accuracy:.4f}")
    return model, {"loss": [round(v, 5) for v in history.history["loss"][::LOSS_EVERY]],
                   "loss_every": LOSS_EVERY, "hands": int(len(x))}


def predict_logits(model, part: LabelledImages) -> np.ndarray:
    """Logits of the served view; a photo without a hand gets all zeros (uniform)."""
    logits = np.zeros((len(part), 10), np.float32)
    if part.found.any():
        # Called directly: model.predict traced a new function on every call (once per fold).
        logits[part.found] = np.asarray(model(part.x[part.found], training=False))
    return logits
