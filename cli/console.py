"""The terminal: one rich console, one way to fail with a one-line message, one to leave."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import NoReturn

import typer
from rich.console import Console

from signdigits.files.names import printable

# soft_wrap: a message stays one line however narrow the terminal (or a pipe) is.
console = Console(stderr=True, highlight=False, soft_wrap=True)
# Tables that are the command's output (status) go to stdout, wide enough not to fold.
output = Console(highlight=False, width=200)


# Exit codes: Click's own for a command line (or a SIGNDIGITS_* value) that cannot work,
# and 1 for a well-formed request that failed (no such job, server down, read-only file).
USAGE, FAILURE, INTERRUPTED = 2, 1, 130


def counted(n: int, noun: str) -> str:
    """``1 batch``, ``2,000 batches``: a count and its noun, agreeing."""
    if n == 1:
        return f"1 {noun}"
    return f"{n:,} {noun}{'es' if noun.endswith(('s', 'x', 'ch', 'sh')) else 's'}"


def fail(message: str, code: int = FAILURE) -> NoReturn:
    """Print ``error: message`` as one line (control characters escaped) and exit."""
    console.print(f"error: {printable(message)}", markup=False, highlight=False)
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


def exit_interrupted(message: str | None = None) -> NoReturn:
    """Print ``error: message`` (if given) and exit 130 now, deaf to further signals.

    Called once a stopped command has cleaned up. Leaving through Python's teardown instead
    opens a window in which the interpreter has put back the default SIGINT action, so a
    late SIGINT kills the process and its parent sees -2, not 130 (seen once in CI, in
    ``test_terminated_bench_leaves_no_worker_or_broker``; the sender was never found).
    """
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    if message is not None:
        console.print(f"error: {printable(message)}", markup=False, highlight=False)
    exit_promptly(INTERRUPTED)
