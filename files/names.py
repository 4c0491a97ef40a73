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
