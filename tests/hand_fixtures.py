"""Fixtures for the tests that run the hand models: the files ``scripts/setup`` fetched into
the venv, and one hand finder on them for the whole run (loading it costs a second)."""

from __future__ import annotations

from pathlib import Path

import pytest

from signdigits.serving.hands.models import MODEL_FILES, default_models_dir
from tests.conftest import require


@pytest.fixture(scope="session")
def hand_models() -> Path:
    folder = default_models_dir()
    require(all((folder / name).is_file() for name in MODEL_FILES),
            f"hand models not in {folder}: run scripts/setup")
    return folder


@pytest.fixture(scope="session")
def finder(hand_models):
    from signdigits.serving.hands.finder import HandFinder

    return HandFinder(hand_models)
