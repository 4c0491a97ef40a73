"""The producer's walk: what counts as an image, and what is never followed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from signdigits.producer.scan import FolderError, Unreachable, scan_folder
from tests.conftest import REPO


def _touch(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_walk_recurses_matches_case_insensitively_and_skips_hidden(tmp_path):
    root = tmp_path / "root"
    for name in ["a.jpg", "b.JPEG", "c.Png", "d.bmp", "e.gif", "f.webp", "g.TIF", "h.tiff",
                 "l.HEIC", "m.heif", "n.avif",
                 "sub/deeper/i.jpg", "with space.jpg", "ünïcødé.png", "line\nbreak.jpg"]:
        _touch(root / name)
    for name in [".hidden.jpg", ".git/j.jpg", "notes.txt", "k.jpg.bak", "sub/model.keras"]:
        _touch(root / name)
    found = sorted(scan_folder(root))
    assert found == sorted(["a.jpg", "b.JPEG", "c.Png", "d.bmp", "e.gif", "f.webp", "g.TIF",
                            "h.tiff", "l.HEIC", "m.heif", "n.avif",
                            "sub/deeper/i.jpg", "with space.jpg", "ünïcødé.png",
                            "line\nbreak.jpg"])


def test_symlinks_out_of_the_folder_are_not_followed_and_each_gets_its_reason(tmp_path):
    """A file a symlink leads to inside the folder is read; what leads out or nowhere, or is
    not a file, is an error row with its reason, never dropped in silence; a symlinked
    folder inside (here a loop) is not walked twice, and other names are not images."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    _touch(outside / "secret.jpg")
    _touch(root / "inside.jpg")
    os.symlink(outside / "secret.jpg", root / "link-out.jpg")
    os.symlink(outside, root / "dir-out")
    os.symlink(root / "inside.jpg", root / "link-in.jpg")
    os.symlink(root, root / "loop")
    os.symlink(root / "missing.jpg", root / "dangling.jpg")
    os.symlink(outside / "secret.jpg", root / "notes.txt")
    os.mkfifo(root / "fifo.jpg")  # reading it would block forever
    os.symlink(root / "fifo.jpg", root / "link-to-fifo.png")
    found = {item if isinstance(item, str) else item.path: item for item in scan_folder(root)}
    assert sorted(name for name, item in found.items() if isinstance(item, str)) == [
        "inside.jpg", "link-in.jpg"]
    reasons = {name: item.reason for name, item in found.items()
               if isinstance(item, Unreachable)}
    assert reasons == {
        "link-out.jpg": "symlink to a file outside the job's folder (not followed)",
        "dir-out/": "symlink to a folder outside the job's folder (not followed); the images "
                    "in it have no rows",
        "dangling.jpg": "broken symlink (its target does not exist)",
        "fifo.jpg": "not a regular file (a FIFO, socket or device; not read)",
        "link-to-fifo.png": "symlink to something that is not a regular file (not read)",
    }


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


def make_deep(top: Path, levels: int, name: str, files: dict[int, bytes]) -> str:
    """A chain of ``levels`` folders below ``top``, made through descriptors (its paths are
    past PATH_MAX); ``files`` puts ``img.jpg`` at those depths. Returns the deepest path."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    relative = []
    try:
        for depth in range(1, levels + 1):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            relative.append(name)
            if depth in files:
                out = os.open("img.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                os.write(out, files[depth])
                os.close(out)
    finally:
        os.close(fd)
    return "/".join(relative)


def remove_deep(path: Path) -> None:
    # shutil.rmtree recurses once per level and stops at Python's recursion limit.
    subprocess.run(["rm", "-rf", str(path)], check=True)


def test_images_past_the_path_limit_are_found(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    _touch(root / "top.jpg")
    wanted = {1: b"x", 1500: b"x", 2999: b"x", 3000: b"x"}  # "d/" x 3000: a 6,000-byte path
    try:
        make_deep(root, 3000, "d", wanted)
        found = list(scan_folder(root))
        expected = {"top.jpg"} | {"/".join(["d"] * depth + ["img.jpg"]) for depth in wanted}
        assert set(found) == expected and len(found) == len(expected)
        assert max(len(p) for p in found) > os.pathconf("/", "PC_PATH_MAX")
    finally:
        remove_deep(root)


def test_an_unreadable_folder_is_reported_not_skipped(tmp_path):
    root = tmp_path / "root"
    _touch(root / "a.jpg")
    _touch(root / "locked" / "b.jpg")
    _touch(root / "locked" / "c.jpg")
    (root / "locked").chmod(0)
    script = ("import sys; from producer.scan import scan_folder\n"
              "for item in scan_folder(sys.argv[1]): print(repr(item))")
    command = [sys.executable, "-c", script, str(root)]
    # Root reads any folder; without these two capabilities its mode applies to root too.
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    result = subprocess.run([*drop, *command] if os.geteuid() == 0 else command,
                            capture_output=True, text=True, cwd=REPO, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    (root / "locked").chmod(0o755)
    lines = sorted(result.stdout.splitlines())
    assert lines == ["'a.jpg'", "Unreachable(path='locked/', reason='folder not listed: "
                     "permission denied; the images in it have no rows')"], result.stderr


def test_names_that_are_not_utf8_are_yielded_as_the_system_gives_them(tmp_path):
    _touch(tmp_path / "ok.jpg")
    os.link(tmp_path / "ok.jpg", os.fsencode(tmp_path) + b"/caf\xe9.jpg")
    assert sorted(scan_folder(tmp_path)) == ["caf\udce9.jpg", "ok.jpg"]
