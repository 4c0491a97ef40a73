"""Reading a job's files by manifest path: what is read, what is refused and why.

Each case runs twice: through Linux's bare-handle path, and through the path-resolving
fallback used where there is no O_PATH or /proc, so both give the same outcome.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import signdigits.files.reading as image_files
from signdigits.files.reading import ImageError, JobFolder
from tests.conftest import require

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["handle", "resolve"])
def folder(request, tmp_path, monkeypatch):
    if request.param == "handle":
        require(image_files._CAN_OPEN_AS_HANDLE, "this system has no O_PATH or /proc/self/fd")
    monkeypatch.setattr(image_files, "_CAN_OPEN_AS_HANDLE", request.param == "handle")
    root = tmp_path / "job"
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"inside")
    (root / "sub" / "b.jpg").write_bytes(b"deeper")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    return JobFolder(root, allowed_roots=[])


def test_files_inside_the_folder_are_read_whole(folder):
    assert folder.read("a.jpg", max_bytes=100) == b"inside"
    assert folder.read("sub/b.jpg", max_bytes=100) == b"deeper"
    assert folder.read("sub/../a.jpg", max_bytes=100) == b"inside"


def test_a_symlinked_file_is_read_only_when_it_points_inside(folder, tmp_path):
    os.symlink(tmp_path / "job" / "a.jpg", tmp_path / "job" / "link-in.jpg")
    os.symlink(tmp_path / "outside" / "secret.jpg", tmp_path / "job" / "link-out.jpg")
    assert folder.read("link-in.jpg", max_bytes=100) == b"inside"
    with pytest.raises(ImageError, match="outside the job's folder"):
        folder.read("link-out.jpg", max_bytes=100)


@pytest.mark.parametrize(
    "relative",
    ["../outside/secret.jpg", "out/secret.jpg", "../../../../../../etc/none", "/etc/passwd"],
)
def test_paths_that_lead_outside_are_refused(folder, tmp_path, relative):
    os.symlink(tmp_path / "outside", tmp_path / "job" / "out")  # a symlinked subfolder
    with pytest.raises(ImageError, match="outside the job's folder"):
        folder.read(relative, max_bytes=100)


def test_special_missing_empty_and_oversized_files_get_their_reason(folder, tmp_path):
    root = tmp_path / "job"
    os.mkfifo(root / "pipe.jpg")
    (root / "empty.jpg").write_bytes(b"")
    (root / "big.jpg").write_bytes(b"x" * 101)
    cases = {
        "pipe.jpg": "not a regular file",  # refused without blocking on the FIFO
        "sub": "not a regular file",
        "gone.jpg": "file not found",
        "empty.jpg": "empty file",
        "big.jpg": "101 bytes, over the 100-byte cap",
    }
    for relative, reason in cases.items():
        with pytest.raises(ImageError, match=reason):
            folder.read(relative, max_bytes=100)
    assert folder.read("big.jpg", max_bytes=101) == b"x" * 101


def test_an_unreadable_file_is_reported_as_such(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"inside")
    (tmp_path / "a.jpg").chmod(0)
    script = (
        "import sys; import files.reading as f\n"
        "f._CAN_OPEN_AS_HANDLE = f._CAN_OPEN_AS_HANDLE and sys.argv[2] == 'handle'\n"
        "try: f.JobFolder(sys.argv[1], allowed_roots=[]).read('a.jpg', max_bytes=100)\n"
        "except f.ImageError as exc: print(exc)\n"
    )
    # Root reads any file; without these two capabilities file modes apply to it too.
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    for way in ("handle", "resolve"):
        command = [sys.executable, "-c", script, str(tmp_path), way]
        result = subprocess.run([*drop, *command] if os.geteuid() == 0 else command,
                                capture_output=True, text=True, cwd=REPO, check=True)
        assert result.stdout.strip() == "permission denied", (way, result.stderr)


def test_a_folder_outside_the_allowed_roots_reads_nothing(tmp_path):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "a.jpg").write_bytes(b"inside")
    (tmp_path / "allowed").mkdir()
    confined = JobFolder(tmp_path / "job", allowed_roots=[tmp_path / "allowed"])
    with pytest.raises(ImageError, match="SIGNDIGITS_ALLOWED_ROOTS"):
        confined.read("a.jpg", max_bytes=100)
    allowed = JobFolder(tmp_path / "job", allowed_roots=[tmp_path])
    assert allowed.read("a.jpg", max_bytes=100) == b"inside"


def test_a_file_that_grew_since_its_size_was_read_is_read_whole_or_refused(tmp_path):
    from signdigits.files.reading import _read_capped

    path = tmp_path / "growing.jpg"
    path.write_bytes(bytes(range(256)) * 12_000)  # 3,072,000 bytes; "seen" as 10 below
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _read_capped(fd, expected=10, max_bytes=5_000_000) == path.read_bytes()
        os.lseek(fd, 0, os.SEEK_SET)
        with pytest.raises(ImageError, match="grew past the 2,000,000-byte cap"):
            _read_capped(fd, expected=10, max_bytes=2_000_000)
    finally:
        os.close(fd)
