"""The build backend pyproject.toml names: setuptools' own, without one note.

The layers are folders at the repository's top level mapped under ``signdigits``
(``config/`` is ``signdigits.config``; see ``[tool.setuptools.package-dir]``), which is
not a layout setuptools can install in editable mode by a plain path entry: it installs a
finder that maps each package to its folder, and then always ends with a boxed
``BuildBackendWarning``-style note ("Editable installation ... be careful with folders
in your working directory with the same name as your package"). Here the one such
folder, ``signdigits/``, is the package's own folder, mapped to itself, so the note can
never apply; a user who ran ``scripts/setup`` saw an alarm about nothing. Every other
warning passes, and every other hook is setuptools' unchanged.
"""

from __future__ import annotations

import warnings
from typing import Any

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403 - every hook of the backend we wrap


def build_editable(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                   metadata_directory: str | None = None) -> str:
    from setuptools.warnings import InformationOnly

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s)\s*Editable installation",
                                category=InformationOnly)
        return build_meta.build_editable(wheel_directory, config_settings, metadata_directory)
