"""A real candidate model for the registry tests, different from the shipped one in a
known way: its weights, with digits 1 and 7 swapped in its class table, so every photo
the shipped model reads as 1 it reads as 7 (and back), and nothing else changes. And a
job's rows rewritten as read by other versions, as if one had been promoted while it ran."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def read_by_another(sessions, job_id: str, batches: dict[int, tuple[str, float | None]]
                    ) -> Iterator[None]:
    """As if a model had been promoted while the job ran: each batch's classified rows
    rewritten as read by the version named (registered while open, under its version as
    name, with the default threshold given in its figures, or none; its files never
    written), as a worker that switched between batches would have stored them."""
    from sqlalchemy import delete, update

    from signdigits.db.models import Image, ImageStatus, ModelRow
    from signdigits.db.registry import register_model

    versions = {version: threshold for version, threshold in batches.values()}
    with sessions.begin() as session:
        for version, threshold in versions.items():
            register_model(session, version=version, name=version, file=f"{version}.keras",
                           parent=None, figures={} if threshold is None else {
                               "default_threshold": threshold})
        for batch, (version, _) in batches.items():
            session.execute(update(Image).where(
                Image.job_id == job_id, Image.batch == batch, Image.status == ImageStatus.DONE
            ).values(model_version=version))
    try:
        yield
    finally:  # the PostgreSQL schema is every test's
        with sessions.begin() as session:
            session.execute(delete(ModelRow).where(ModelRow.version.in_(list(versions))))
