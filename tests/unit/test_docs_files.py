"""/docs serves the pinned Swagger UI files only (web/app.py's SHA-256 table)."""

from __future__ import annotations

import shutil
from pathlib import Path


def test_the_installed_swagger_ui_is_the_pinned_one_and_another_is_named(tmp_path):
    from openapi_ui_bundles import swagger_ui

    from signdigits.web.app import swagger_ui_problem

    installed = Path(swagger_ui.static_path)
    assert swagger_ui_problem(installed) is None
    copy = tmp_path / "vendor"
    shutil.copytree(installed, copy)
    (copy / "swagger-ui.css").write_text("body {}")
    problem = swagger_ui_problem(copy)
    assert problem is not None and problem.startswith("swagger-ui.css is not the pinned file")
    assert "reinstall openapi-ui-bundles==0.3.0" in problem
    (copy / "swagger-ui-bundle.js").unlink()
    assert swagger_ui_problem(copy) == "swagger-ui-bundle.js: No such file or directory"
