"""The terminal: one rich console, one way to fail with a one-line message, one to leave."""

from __future__ import annotations

import logging
import os
import sys
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


def exit_promptly(code: int = 0) -> NoReturn:
    """Exit once everything printed is flushed, skipping Python's teardown of every module.

    Tearing down what ``submit`` imports (SQLAlchemy, Celery, pydantic: ~870 modules)
    took ~0.2 CPU-seconds, spent just as the workers start on the job's first batches,
    often on the same cores. Nothing is lost: every transaction is committed and every
    message published before this is called, and PostgreSQL, SQLite and Redis all treat a
    closed connection as a client that left.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
