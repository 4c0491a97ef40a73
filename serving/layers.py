"""The model's own layers, which every load of the ``.keras`` archive needs registered.

They live on the serving side because a worker loads the archive: if they stayed with the
training code, serving would depend on training, and an archive loaded without importing
this module fails with "Could not locate class 'Standardize'".
"""

from __future__ import annotations

import keras
from keras import layers, ops

from signdigits.serving.model_input import IMAGE_SIZE


@keras.saving.register_keras_serializable(package="signdigits")
class Standardize(layers.Layer):
    """Per-image zero mean and unit variance (what tf.image.per_image_standardization does)."""

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = ops.maximum(ops.std(x, axis=(1, 2, 3), keepdims=True), 1.0 / IMAGE_SIZE)
        return (x - mean) / std


@keras.saving.register_keras_serializable(package="signdigits")
class Mirror(layers.Layer):
    """Left-right mirror image (deterministic; not an augmentation)."""

    def call(self, x):
        return ops.flip(x, axis=2)
