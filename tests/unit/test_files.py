"""``files/``: names shown on one safe line, names kept exactly, and path containment.

Containment is checked on paths that do not exist (``/nonexistent-signdigits``): real
paths of those are the same strings, so no file on this machine changes an answer.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from signdigits.files.names import printable
from signdigits.files.paths import (
    disk_name,
    inside_allowed_roots,
    is_image_name,
    is_inside,
    resolve_inside,
    stored_name,
)

ROOT = "/nonexistent-signdigits/photos"


@pytest.mark.parametrize(("name", "shown"), [
    ("plain.jpg", "plain.jpg"),
    ("café ٣.jpg", "café ٣.jpg"),  # printable letters and digits of any script stay
    ("a\nb.jpg", "a\\nb.jpg"),
    ("a\rb.jpg", "a\\rb.jpg"),  # a bare CR would hide what came before it
    ("a\tb.jpg", "a\\tb.jpg"),
    ("\x1b[31mred.jpg", "\\x1b[31mred.jpg"),  # an escape sequence would rewrite the terminal
    ("\x7f.jpg", "\\x7f.jpg"),
    ("\x85.jpg", "\\x85.jpg"),  # C1 control (NEL)
    ("gpj.\u202eexe", "gpj.\\u202eexe"),  # a bidi override would reorder it
    ("zero\u200bwidth", "zero\\u200bwidth"),  # format characters: invisible otherwise
    ("line\u2028sep", "line\\u2028sep"),
    ("caf\udce9.jpg", "caf\\udce9.jpg"),  # a byte that was not UTF-8, as Python holds it
    ("back\\slash.jpg", "back\\\\slash.jpg"),  # doubled: no escaped name passes for another
    ("back\\nslash", "back\\\\nslash"),
])
def test_printable(name, shown):
    assert printable(name) == shown


def test_printable_tells_apart_a_name_and_its_escaped_spelling():
    names = ["a\nb", "a\\nb", "a\\\nb", "\x1b", "\\x1b"]
    shown = [printable(n) for n in names]
    assert len(set(shown)) == len(names)
    assert all(s.isprintable() for s in shown)


@pytest.mark.parametrize(("name", "image"), [
    ("a.jpg", True), ("A.JPEG", True), ("b.Png", True), ("c.heic", True), ("d.avif", True),
    ("e.tiff", True), ("f.webp", True), ("g.gif", True), ("h.bmp", True),
    (".hidden.jpg", False), ("notes.txt", False), ("jpg", False), ("a.jpg.bak", False),
    ("noext", False), ("a.", False),
])
def test_which_names_are_images(name, image):
    assert is_image_name(name) is image


@pytest.mark.parametrize(("path", "root", "inside"), [
    ("/data", "/data", True),
    ("/data/a.jpg", "/data", True),
    ("/data/sub/a.jpg", "/data", True),
    ("/database/a.jpg", "/data", False),  # a common prefix is not a parent
    ("/dat", "/data", False),
    ("/", "/data", False),
    ("/anything", "/", True),
    ("/data/a.jpg", "/data/", True),
])
def test_is_inside(path, root, inside):
    assert is_inside(path, root) is inside


@pytest.mark.parametrize(("relative", "resolved"), [
    ("a.jpg", f"{ROOT}/a.jpg"),
    ("sub/../a.jpg", f"{ROOT}/a.jpg"),
    ("./sub/a.jpg", f"{ROOT}/sub/a.jpg"),
    ("", ROOT),
    ("../photos/a.jpg", f"{ROOT}/a.jpg"),  # out and back in: inside
    ("../a.jpg", None),
    ("sub/../../a.jpg", None),
    ("../photos-2/a.jpg", None),  # a sibling sharing the prefix
    ("/etc/passwd", None),  # an absolute path replaces the root
])
def test_resolve_inside(relative, resolved):
    found = resolve_inside(Path(ROOT), relative)
    assert found == (Path(resolved) if resolved else None)


@pytest.mark.parametrize(("folder", "roots", "allowed"), [
    ("/anywhere", [], True),  # no roots configured: every folder
    (ROOT, [Path(ROOT)], True),
    (f"{ROOT}/2024", [Path("/elsewhere"), Path(ROOT)], True),
    (f"{ROOT}-old", [Path(ROOT)], False),
    (f"{ROOT}/../other", [Path(ROOT)], False),
])
def test_inside_allowed_roots(folder, roots, allowed):
    assert inside_allowed_roots(folder, roots) is allowed


@pytest.mark.parametrize(("name", "kept"), [
    ("plain.jpg", ("plain.jpg", None)),
    ("café.jpg", ("café.jpg", None)),
    (os.fsdecode(b"caf\xe9.jpg"), ("caf\\xe9.jpg", b"caf\xe9.jpg")),  # Latin-1 on disk
])
def test_a_name_is_kept_readable_and_opened_by_its_exact_bytes(name, kept):
    assert stored_name(name) == kept
    assert disk_name(*stored_name(name)) == name
