"""The architectures ``--architecture`` and the augmentations ``--augmentation`` name (no
Keras here: the CLI checks the options before TensorFlow loads)."""

from __future__ import annotations

from typing import NamedTuple

# Filters of the 3x3 conv + ReLU + 2x2 max-pool blocks, and the dense layer's width.
ARCHITECTURES: dict[str, tuple[tuple[int, ...], int]] = {
    # The original project's: ~40 M multiply-adds per view.
    "original": ((32, 64, 128), 128),
    # Half the filters per block and one block more (down to 4 x 4): ~15 M per view.
    "slim": ((16, 32, 64, 128), 128),
}


def check_architecture(name: str) -> str:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; expected one of {sorted(ARCHITECTURES)}")
    return name


class Augmentation(NamedTuple):
    """How far a training image is moved at random (Keras's preprocessing layers' units)."""

    rotation: float  # fraction of a full turn, either way
    zoom: tuple[float, float]  # relative size change; negative zooms in (crops)
    shift: float  # fraction of the side, each axis
    contrast: float


AUGMENTATIONS: dict[str, Augmentation] = {
    # The first recipes': small moves around the dataset's own framing.
    "standard": Augmentation(rotation=0.03, zoom=(-0.1, 0.1), shift=0.08, contrast=0.2),
    # Closer crops and larger turns: other signers hold the hand nearer the camera (the
    # test split's one confident mistake was a hand filling the frame) and tilt it more.
    "wide": Augmentation(rotation=0.06, zoom=(-0.3, 0.1), shift=0.12, contrast=0.3),
    "strong": Augmentation(rotation=0.08, zoom=(-0.4, 0.15), shift=0.15, contrast=0.3),
}


def check_augmentation(name: str) -> str:
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; expected one of {sorted(AUGMENTATIONS)}")
    return name
