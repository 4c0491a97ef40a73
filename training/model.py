"""The CNN: the original project's architecture behind a per-image standardisation.

Standardising each image (zero mean, unit variance) inside the model makes it indifferent
to the exposure and contrast of a photo, which is most of what differs between signers'
cameras; removing it costs accuracy on photos unlike the training set. Batch
normalisation was tried and dropped: with ~40 steps per epoch its running statistics
lagged the weights and validation accuracy stayed at chance for many epochs.

Augmentation lives in :func:`augmenter` and is applied to training batches only; it is
never part of the saved inference graph, so a served model sees the pixels it is given.
"""

from __future__ import annotations

import os

import keras
from keras import layers, ops

from training.labels import NUM_CLASSES
from training.preprocess import IMAGE_SIZE


@keras.saving.register_keras_serializable(package="signdigits")
class Standardize(layers.Layer):
    """Per-image zero mean and unit variance (what tf.image.per_image_standardization does)."""

    def call(self, x):
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = ops.maximum(ops.std(x, axis=(1, 2, 3), keepdims=True), 1.0 / IMAGE_SIZE)
        return (x - mean) / std


def build_model() -> keras.Model:
    """Three 3x3 conv + ReLU + 2x2 max-pool blocks (32, 64, 128), dense 128, dropout 0.5."""
    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), name="pixels")
    x = Standardize()(inputs)
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="signdigits_cnn")


def augmenter(seed: int, strength: float = float(os.environ.get("SD_AUG", "1.0"))):
    """Random pose, framing, mirror and lighting changes that other signers' photos show."""
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.03 * strength, fill_mode="nearest", seed=seed),
            layers.RandomZoom(0.1 * strength, fill_mode="nearest", seed=seed),
            layers.RandomTranslation(0.08 * strength, 0.08 * strength, fill_mode="nearest",
                                     seed=seed),
            layers.RandomContrast(0.2 * strength, seed=seed),
        ],
        name="augment",
    )
