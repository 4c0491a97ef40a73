"""The CNN: the original project's architecture behind a per-image standardisation.

Standardising each image (zero mean, unit variance) inside the model makes it indifferent
to the exposure and contrast of a photo, which is most of what differs between signers'
cameras; removing it costs accuracy on photos unlike the training set. Batch
normalisation was tried and dropped: with ~40 steps per epoch its running statistics
lagged the weights and validation accuracy stayed at chance for many epochs.

Augmentation lives in :func:`augmenter` and is applied to training batches only; it is
never part of the saved inference graph. The saved graph (:func:`build_inference_model`)
does one deterministic thing more: it averages the network's answer on the image and on
its mirror image, because a digit signed with the other hand is the same digit. On the
validation signers this lifted accuracy from 98.6-99.0% to 99.0-99.3% in two of three
recipes tried, at twice the inference cost; removing it loses that.
"""

from __future__ import annotations

import keras
from keras import layers

from serving.layers import Mirror, Standardize
from serving.model_input import IMAGE_SIZE, NUM_CLASSES


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
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="class_probabilities")(x)
    return keras.Model(inputs, outputs, name="signdigits_cnn")


def build_inference_model(trained: keras.Model) -> keras.Model:
    """The served graph: mean of the trained network on the image and its mirror image."""
    network = build_model()  # a fresh, uncompiled copy: no optimizer state in the archive
    network.set_weights(trained.get_weights())
    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), name="pixels")
    outputs = layers.Average(name="probabilities")([network(inputs), network(Mirror()(inputs))])
    return keras.Model(inputs, outputs, name="signdigits_served")


def augmenter(seed: int) -> keras.Sequential:
    """Random pose, framing, mirror and lighting changes that other signers' photos show."""
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.03, fill_mode="nearest", seed=seed),
            layers.RandomZoom(0.1, fill_mode="nearest", seed=seed),
            layers.RandomTranslation(0.08, 0.08, fill_mode="nearest", seed=seed),
            layers.RandomContrast(0.2, seed=seed),
        ],
        name="augment",
    )
