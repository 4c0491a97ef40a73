"""One fit of the classifier (the recipe and the optimiser), shared by ``train`` and the
cross-validation.

The training rows are each photo's hand as served plus the same hand found on padded
copies of the photo (:data:`training.hand_features.VIEWS`): the landmark model places
the points a little differently on each, and training on all of them keeps the model from
resting on one placement. Evaluation uses the served view only.
"""

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
    padded_views: bool = True  # train on the padded copies' hands too


def recipe_differences(recorded: object, recipe: Recipe) -> list[str]:
    """Where a recorded recipe (a CV result's) differs from ``recipe``, one
    'field recorded (this training: value)' each; empty when they are the same."""
    if not isinstance(recorded, dict):
        return ["none recorded"]
    this = recipe.__dict__
    return [f"{name} {recorded.get(name)!r} (this training: {this.get(name)!r})"
            for name in sorted(set(recorded) | set(this)) if recorded.get(name) != this.get(name)]


def training_rows(data: LabelledImages, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """Features and class of every hand found in ``data``, in every view the recipe uses."""
    xs, ys = [data.x[data.found]], [data.classes[data.found]]
    if recipe.padded_views and data.views is not None and data.views_found is not None:
        for view in range(data.views.shape[1]):
            seen = data.views_found[:, view]
            xs.append(data.views[seen, view])
            ys.append(data.classes[seen])
    return np.concatenate(xs), np.concatenate(ys)


def fit_classifier(train: LabelledImages, recipe: Recipe, *, report: Report = print,
                   prefix: str = ""):
    """Fit a fresh logits model on ``train``'s hands; returns (model, history dict)."""
    import keras

    from signdigits.training.model import build_logits_model

    x, y = training_rows(train, recipe)
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
