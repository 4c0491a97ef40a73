"""`signdigits predict`: the label table on real photos, and every file its own line."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import make_env, run_cli, unseen_signer_files


def test_predict_reports_the_folder_digits(dataset, tmp_path):
    """The label table, checked on real photos: the original project's was wrong."""
    import random

    files = unseen_signer_files(dataset)
    assert len(files) > 200
    sample = random.Random(5).sample(files, 100)
    result = run_cli("predict", *(str(p) for p, _ in sample), env=make_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 100
    correct = sum(
        f": digit {digit} " in line for (path, digit), line in zip(sample, lines, strict=True)
    )
    assert correct >= 95, f"{correct}/100 correct"


def test_predict_reports_bad_files_and_goes_on(dataset, tmp_path):
    good = next((dataset / "3").iterdir())
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_text("<html>no</html>")
    missing = tmp_path / "missing.png"
    preview = tmp_path / "preview"
    result = run_cli("predict", str(corrupt), str(good), str(missing), "--preview", str(preview),
                     env=make_env(), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{good}: digit" in result.stdout
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 2 and "not an image" in errors[0] and "not found" in errors[1]
    assert (preview / f"{good.stem}.png").exists()


def test_predict_keeps_a_preview_for_each_of_two_files_of_one_name(dataset, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    three, seven = next((dataset / "3").iterdir()), next((dataset / "7").iterdir())
    (tmp_path / "a" / "one.jpg").write_bytes(three.read_bytes())
    (tmp_path / "b" / "one.jpg").write_bytes(seven.read_bytes())
    result = run_cli("predict", "a/one.jpg", "b/one.jpg", "--preview", "views",
                     env=make_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "views").iterdir()) == ["one-2.png", "one.png"]
    assert (tmp_path / "views" / "one.png").read_bytes() != \
        (tmp_path / "views" / "one-2.png").read_bytes()


def test_predict_reports_an_unreadable_file_and_classifies_the_rest(dataset, tmp_path):
    """click's own readable check refused the whole command (a usage box, exit 2)."""
    good = next((dataset / "3").iterdir())
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(good.read_bytes())
    locked.chmod(0)
    as_user = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] \
        if os.geteuid() == 0 else []  # so the file's mode applies to root too
    result = subprocess.run(
        [*as_user, sys.executable, "-m", "signdigits", "predict", str(locked), str(good)],
        env=make_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr
    assert f"{good}: digit" in result.stdout
    [error] = [line for line in result.stderr.splitlines() if "error:" in line]
    assert "locked.jpg" in error and "permission denied" in error, error
