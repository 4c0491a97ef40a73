"""The CNNs: the original project's architecture and a slimmer one, behind a per-image
standardisation.

Standardising each image (zero mean, unit variance) inside the model makes it indifferent
to the exposure and contrast of a photo, which is most of what differs between signers'
cameras; removing it costs accuracy on photos unlike the training set. Batch
normalisation was tried and dropped: with ~40 steps per epoch its running statistics
lagged the weights and validation accuracy stayed at chance for many epochs.

Augmentation lives in :func:`augmenter` and is applied to training batches only; it is
never part of the saved inference graph. The saved graph (:func:`build_inference_model`)
does one deterministic thing more: it averages the network's logits on the image and on
its mirror image (a digit signed with the other hand is the same digit), divides them by
the calibration temperature and applies the softmax. Every op in it (conv, pool, dense,
mean, flip, multiply, softmax) is a plain one that tf2onnx converts, so every runtime that
serves the graph gives the same calibrated probabilities without code of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from signdigits.serving.layers import Mirror, Standardize
from signdigits.serving.model_input import IMAGE_SIZE, NUM_CLASSES
from signdigits.training.architectures import (
    ARCHITECTURES,
    AUGMENTATIONS,
    check_architecture,
    check_augmentation,
)


def build_model(architecture: str = "original") -> keras.Model:
    """Conv blocks, dense, dropout 0.5, a linear ``logits`` layer, then the softmax."""
    filters, dense = ARCHITECTURES[check_architecture(architecture)]
    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), name="pixels")
    x = Standardize()(inputs)
    for width in filters:
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    logits = layers.Dense(NUM_CLASSES, name="logits")(x)
    outputs = layers.Softmax(name="class_probabilities")(logits)
    return keras.Model(inputs, outputs, name=f"signdigits_{architecture}")


def logits_model(trained: keras.Model, architecture: str, name: str = "network") -> keras.Model:
    """A fresh, uncompiled copy of ``trained`` ending at its logits (no optimizer state)."""
    network = build_model(architecture)
    network.set_weights(trained.get_weights())
    return keras.Model(network.input, network.get_layer("logits").output, name=name)


def build_mirror_logits(networks: Sequence[keras.Model], architecture: str) -> keras.Model:
    """Mean of the networks' logits (a recipe's members) on the image and on its mirror
    image; one network keeps the single ``network`` the first artifacts had."""
    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), name="pixels")
    mirrored = Mirror()(inputs)
    views = []
    for i, member in enumerate(networks):
        name = "network" if len(networks) == 1 else f"network_{i + 1}"
        network = logits_model(member, architecture, name)
        views += [network(inputs), network(mirrored)]
    mean = layers.Average(name="mirror_mean")(views)
    return keras.Model(inputs, mean, name="signdigits_logits")


def build_inference_model(
    networks: Sequence[keras.Model], architecture: str = "original", temperature: float = 1.0
) -> keras.Model:
    """The served graph: softmax(mean of mirror-pair logits / temperature)."""
    mirrored = build_mirror_logits(networks, architecture)
    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), name="pixels")
    scaled = layers.Rescaling(1.0 / temperature, name="temperature")(mirrored(inputs))
    outputs = layers.Softmax(name="probabilities")(scaled)
    return keras.Model(inputs, outputs, name="signdigits_served")


def multiply_adds(model: keras.Model) -> int:
    """Conv and dense multiply-adds of one forward pass, nested models included."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            calls = max(1, len(getattr(layer, "_inbound_nodes", [])) or 1)
            total += calls * multiply_adds(layer)
        elif isinstance(layer, layers.Conv2D):
            out_h, out_w, out_c = layer.output.shape[1:]
            k_h, k_w = layer.kernel_size
            in_c = layer.input.shape[-1]
            total += out_h * out_w * out_c * k_h * k_w * in_c // layer.groups
        elif isinstance(layer, layers.Dense):
            total += int(layer.input.shape[-1]) * layer.units
    return int(total)


def augmenter(seed: int, name: str = "standard") -> keras.Sequential:
    """Random pose, framing, mirror and lighting changes that other signers' photos show."""
    move = AUGMENTATIONS[check_augmentation(name)]
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(move.rotation, fill_mode="nearest", seed=seed),
            layers.RandomZoom(move.zoom, fill_mode="nearest", seed=seed),
            layers.RandomTranslation(move.shift, move.shift, fill_mode="nearest", seed=seed),
            layers.RandomContrast(move.contrast, seed=seed),
        ],
        name="augment",
    )
