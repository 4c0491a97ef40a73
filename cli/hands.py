"""``fetch-hand-models``: the hand detector's files, from the pinned wheel, checked."""

from __future__ import annotations

from pathlib import Path

import typer

from signdigits.cli.console import console, fail


def fetch_hand_models(
    folder: Path | None = typer.Option(
        None, help="where to put them (default: SIGNDIGITS_HAND_MODELS_DIR, else "
        "<python prefix>/share/signdigits/hands)"),
    force: bool = typer.Option(False, help="download again even if the checked files are there"),
) -> None:
    """Download MediaPipe's hand models (Apache-2.0) from the pinned wheel and check them."""
    from signdigits.cli.preflight import settings_or_fail
    from signdigits.serving.hands.models import (
        HandModelsError,
        fetch_models,
        models_dir,
        models_present,
    )

    target = folder or models_dir(settings_or_fail().hand_models_dir)
    if not force and models_present(target):
        console.print(f"hand models in {target}: present, hashes checked")
        return
    try:
        fetch_models(target, say=lambda line: console.print(line, markup=False,
                                                            highlight=False))
    except (HandModelsError, OSError) as exc:
        fail(str(exc))
