"""A real candidate model for the registry tests, different from the shipped one in a
known way: its weights, with digits 1 and 7 swapped in its class table, so every photo
the shipped model reads as 1 it reads as 7 (and back), and nothing else changes."""

from __future__ import annotations

from pathlib import Path

SWAP = {1: 7, 7: 1}


def write_swapped_model(folder: Path) -> Path:
    """The shipped model with 1 and 7 swapped, as a .keras and .onnx pair; its .keras path."""
    from signdigits.serving.artifact import read_model_info, save_artifact, shipped_model_path
    from signdigits.training.adapt import parent_weights, served_model
    from signdigits.training.export_onnx import export_onnx

    shipped = read_model_info(shipped_model_path())
    assert shipped.onnx_path is not None
    weights = parent_weights(shipped.onnx_path)
    table = [SWAP.get(d, d) for d in shipped.class_to_digit]
    metadata = {**{k: shipped.metadata[k] for k in ("hand_models", "features_version",
                                                     "default_threshold")},
                "class_to_digit": table, "training_command": "tests: 1 and 7 swapped",
                # Three signers' photos stand for the test split (tests link them).
                "split": {"by": "signer", "test_groups": [0, 1, 2]}}
    out = folder / "swapped.keras"
    save_artifact(served_model(weights.kernel.astype("float32"),
                               weights.bias.astype("float32")), out, metadata)
    return export_onnx(out).path
