"""The architectures ``--architecture`` names (no Keras here: the CLI checks the option
before TensorFlow loads)."""

from __future__ import annotations

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
