"""The dataset's class order: the only place the class-index -> digit table is written.

The model's output classes are the class indices of the widely shared ``X.npy``/``Y.npy``
version of the Sign Language Digits dataset. Training copies this table into the model
artifact; ``predict`` and the workers read it from the artifact and never from here, so a
model trained with another class order still gets its own table applied.
"""

from __future__ import annotations

from signdigits.serving.model_input import NUM_CLASSES as MODEL_CLASSES

# index -> digit, as documented by the dataset (see ../shared/datasets/.../README.md).
NPY_CLASS_TO_DIGIT: tuple[int, ...] = (9, 0, 7, 6, 1, 8, 4, 3, 2, 5)
NUM_CLASSES = len(NPY_CLASS_TO_DIGIT)
assert NUM_CLASSES == MODEL_CLASSES, "the dataset and the model disagree on the class count"


def digit_to_class(digit: int) -> int:
    """Class index of ``digit`` in the dataset's order (used only when reading labels)."""
    return NPY_CLASS_TO_DIGIT.index(digit)


def in_model_order(classes, class_to_digit: tuple[int, ...]):
    """The dataset's class indices of labelled data -> the same labels as ``class_to_digit``
    numbers the model's outputs. Scoring a model against labels without this compares two
    numberings: a model trained with another class order would score 0% while it is right."""
    import numpy as np

    digits = np.asarray(NPY_CLASS_TO_DIGIT)[np.asarray(classes)]
    return np.argsort(np.asarray(class_to_digit))[digits]
