"""The producer's walk: what counts as an image, and what is never followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from producer.scan import FolderError, scan_folder


def _touch(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_walk_recurses_matches_case_insensitively_and_skips_hidden(tmp_path):
    root = tmp_path / "root"
    for name in ["a.jpg", "b.JPEG", "c.Png", "d.bmp", "e.gif", "f.webp", "g.TIF", "h.tiff",
                 "sub/deeper/i.jpg", "with space.jpg", "ünïcødé.png", "line\nbreak.jpg"]:
        _touch(root / name)
    for name in [".hidden.jpg", ".git/j.jpg", "notes.txt", "k.jpg.bak", "sub/model.keras"]:
        _touch(root / name)
    found = sorted(scan_folder(root))
    assert found == sorted(["a.jpg", "b.JPEG", "c.Png", "d.bmp", "e.gif", "f.webp", "g.TIF",
                            "h.tiff", "sub/deeper/i.jpg", "with space.jpg", "ünïcødé.png",
                            "line\nbreak.jpg"])


def test_symlinks_out_of_the_folder_are_not_followed(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    _touch(outside / "secret.jpg")
    _touch(root / "inside.jpg")
    os.symlink(outside / "secret.jpg", root / "link-out.jpg")
    os.symlink(outside, root / "dir-out")
    os.symlink(root / "inside.jpg", root / "link-in.jpg")
    os.symlink(root, root / "loop")
    os.symlink(tmp_path / "nowhere.jpg", root / "dangling.jpg")
    os.mkfifo(root / "fifo.jpg")  # reading it would block forever
    assert sorted(scan_folder(root)) == ["inside.jpg", "link-in.jpg"]


def test_the_walk_is_a_stream(tmp_path):
    _touch(tmp_path / "a.jpg")
    walk = scan_folder(tmp_path)
    assert iter(walk) is walk and next(walk) == "a.jpg"


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_folder_that_is_not_one_is_refused(tmp_path, kind):
    target = tmp_path / "x"
    if kind == "file":
        target.write_text("x")
    with pytest.raises(FolderError):
        list(scan_folder(target))
