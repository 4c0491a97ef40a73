"""The digit classifier: a logistic regression over a hand's landmark features.

Tried on the foreign photos (``modi``, ``cyril``; for choosing only, never trained on):
the landmark features transfer where pixels did not (the CNN was 28.5% right on
``modi``), and this linear model on them was 99.8-100% right on both. The graph is
``Normalization`` (mean and variance adapted on the training hands) -> ``Dense`` (the
logits) -> division by the calibration temperature -> softmax -> the familiarity step
(:mod:`serving.familiar`): operations that tf2onnx converts, so every runtime serves the
same calibrated probabilities.
"""

from __future__ import annotations

import numpy as np

from signdigits.serving.classifier import import_tensorflow
from signdigits.serving.model_input import FEATURE_COUNT, NUM_CLASSES
from signdigits.training.familiarity import Familiar

import_tensorflow()  # before Keras imports it: TensorFlow's start-up lines kept off stderr
import keras  # noqa: E402
from keras import layers  # noqa: E402


def build_logits_model(train_x: np.ndarray, *, l2: float) -> keras.Model:
    """Features -> logits, with the standardisation adapted on ``train_x``."""
    inputs = keras.Input(shape=(FEATURE_COUNT,), name="features")
    normalize = layers.Normalization(name="standardize")
    normalize.adapt(train_x)
    # Penalty l2/2 * |W|^2 on the mean loss: small weights keep the probabilities of hands
    # unlike the training photos from running to 1.
    logits = layers.Dense(NUM_CLASSES, name="logits",
                          kernel_regularizer=keras.regularizers.L2(l2 / 2))(normalize(inputs))
    return keras.Model(inputs, logits, name="hand_digits")


def build_inference_model(logits_model: keras.Model, temperature: float,
                          familiar: Familiar | None = None) -> keras.Model:
    """The served graph: calibrated probabilities, from one dense layer, then (with
    ``familiar``) pulled toward uniform for a hand unlike the training hands
    (:mod:`serving.familiar`).

    The standardisation and the temperature are folded into the dense layer's weights
    ((x - mean) / std @ W + b, over T, is x @ W' + b'): the same function in fewer
    operations, and one tf2onnx converts whole (it dropped the Normalization layer's
    constants from the ONNX graph's initialisers).
    """
    normalize = logits_model.get_layer("standardize")
    dense = logits_model.get_layer("logits")
    mean = np.asarray(normalize.mean).reshape(-1)
    std = np.sqrt(np.maximum(np.asarray(normalize.variance).reshape(-1), 1e-7))
    kernel, bias = (np.asarray(w) for w in dense.get_weights())
    folded_kernel = kernel / std[:, None] / temperature
    folded_bias = (bias - (mean / std) @ kernel) / temperature
    return served_graph(folded_kernel, folded_bias, familiar)


def served_graph(kernel: np.ndarray, bias: np.ndarray,
                 familiar: Familiar | None) -> keras.Model:
    """Features -> softmax(x @ kernel + bias); with ``familiar``, the familiarity step's
    two outputs instead: those probabilities, pulled for an unfamiliar hand, and whether
    it is one."""
    from signdigits.serving.familiar import Familiarity

    inputs = keras.Input(shape=(kernel.shape[0],), name="features")
    served = layers.Dense(kernel.shape[1], activation="softmax", name="probabilities")
    outputs = served(inputs)
    served.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    if familiar is not None:
        step = Familiarity(len(familiar.references), kernel.shape[0], familiar.cut,
                           name="familiarity")
        outputs = list(step([inputs, outputs]))  # probabilities, unfamiliar
        references = familiar.references.astype(np.float32)
        step.set_weights([familiar.mean.astype(np.float32), familiar.scale.astype(np.float32),
                          references.T.copy(), (references * references).sum(axis=1)])
    return keras.Model(inputs, outputs, name="signdigits_hands")

