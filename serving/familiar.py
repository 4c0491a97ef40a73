"""The served graph's last step: a hand unlike every hand the model trained on is read
below any threshold.

A logistic regression is surest far from its data: a stretched webcam hand, an arm with
no hand, a pose no signer made lie beyond every training hand, and the linear logits run
to 1 there. So the graph measures, in the standardised features, how far the hand is
from the nearest of the training hands it keeps (:data:`training.familiarity.REFERENCES`
of them, chosen to cover the rest), and a hand farther than any training hand lies from
its own nearest reference (the ``cut``) gets its probabilities pulled halfway to uniform:
the same digit, at most 0.55 sure, and the graph's second output says so (the reading
ends ", unlike the training hands"; docs/model.md, "Unfamiliar hands").

Inside the graph, not beside it: ONNX Runtime, TensorFlow, ``predict``, the workers and
the web read the same probabilities, and an older artifact without it is served as it
was. Imported only where a ``.keras`` graph is built or loaded (training, the TensorFlow
runtime): it imports Keras.
"""

from __future__ import annotations

import keras
from keras import ops

# The share of the classifier's probabilities an unfamiliar hand keeps; the rest is spread
# evenly over the classes: 0.5 * p + 0.05 with ten, so at most 0.55.
KEPT_SHARE = 0.5


@keras.saving.register_keras_serializable(package="signdigits")
class Familiarity(keras.layers.Layer):
    """[features, probabilities] -> [probabilities, unfamiliar]: the probabilities pulled
    toward uniform for a hand farther than ``cut`` from every reference (standardised
    distances), and 1.0 for such a hand, 0.0 for the others (the graph's second output,
    which the reading names: serving.reader)."""

    def __init__(self, references: int, features: int, cut: float,
                 kept_share: float = KEPT_SHARE, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reference_count, self.feature_count = int(references), int(features)
        self.cut, self.kept_share = float(cut), float(kept_share)

    def build(self, input_shape) -> None:
        def constant(name: str, shape: tuple[int, ...]):
            return self.add_weight(name=name, shape=shape, initializer="zeros",
                                   trainable=False)

        self.mean = constant("mean", (self.feature_count,))
        self.scale = constant("scale", (self.feature_count,))  # 1 / standard deviation
        # Stored transposed, each reference a column: one matrix product per batch.
        self.references = constant("references", (self.feature_count, self.reference_count))
        self.norms = constant("norms", (self.reference_count,))  # |reference|^2

    def call(self, inputs):
        features, probabilities = inputs
        z = (features - self.mean) * self.scale
        # |z - r|^2 = |z|^2 - 2 z.r + |r|^2, the nearest reference's.
        nearest = ops.min(self.norms - 2.0 * ops.matmul(z, self.references), axis=1)
        squared = ops.sum(z * z, axis=1) + nearest
        unfamiliar = ops.greater(squared, self.cut ** 2)
        classes = ops.shape(probabilities)[1]
        pulled = probabilities * self.kept_share + (1.0 - self.kept_share) / ops.cast(
            classes, probabilities.dtype)
        return (ops.where(ops.expand_dims(unfamiliar, 1), pulled, probabilities),
                ops.cast(unfamiliar, probabilities.dtype))

    def get_config(self) -> dict:
        return {**super().get_config(), "references": self.reference_count,
                "features": self.feature_count, "cut": self.cut,
                "kept_share": self.kept_share}
