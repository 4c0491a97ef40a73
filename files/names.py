"""Showing a name that came from outside (a file name, a path, an error) on one safe line."""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def printable(text: str) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x1b``, ``\\u202e``).

    A file name is any bytes but ``/`` and NUL: printed raw, an escape sequence in one can
    rewrite the terminal, a ``\\r`` hide what came before it, a bidi override reorder it.
    Backslashes are doubled so that an escaped name cannot pass for another.
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escaped(c) for c in text)


def _escaped(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return char


# Characters that end a line (what str.splitlines splits on): a name is one line.
LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
# Bidirectional controls: marks, embeddings, overrides and isolates. Invisible, and one
# (U+202E) shown beside a name reverses what follows it: a job id, a count.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")


def is_control(c: str) -> bool:
    return ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a name people give (a job's, a model's), or None: it is one
    line, with no other control character and no bidirectional control."""
    if any(c in LINE_BREAKS for c in name):
        return "is one line: it cannot hold a line break"
    if any(is_control(c) for c in name):
        return "cannot hold control characters"
    bidi = next((c for c in name if c in BIDI_CONTROLS), None)
    if bidi is not None:
        return (f"cannot hold bidirectional control characters (U+{ord(bidi):04X}): they "
                "reorder the text shown beside it")
    return None
