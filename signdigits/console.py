"""The terminal: one rich console, and one way to fail with a one-line message."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

# soft_wrap: a message stays one line however narrow the terminal (or a pipe) is.
console = Console(stderr=True, highlight=False, soft_wrap=True)
# Tables that are the command's output (status) go to stdout, wide enough not to fold.
output = Console(highlight=False, width=200)


def fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)
