"""Labelled photos -> the hand features the classifier trains on, read as the workers read.

Each photo goes through :func:`serving.photo.read_photo`, the served
:class:`~serving.hands.finder.HandFinder` and :func:`serving.hands.features.hand_features`:
one path for training, ``predict``, the workers and the web. Finding hands costs about
50 ms a photo on one core here, so the photos are shared among processes (one per core)
and the result is kept in a cache keyed by every file's name, size and modification
time, the features version and the hand models' hashes: ``cv`` then ``train`` on the
same folder read it once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from signdigits.files.reading import ImageError
from signdigits.serving.hands.features import FEATURES_VERSION
from signdigits.serving.hands.models import check_models, models_dir
from signdigits.serving.model_input import FEATURE_COUNT, PREPROCESS_VERSION

_CHUNK = 32  # photos per task: progress often enough, few round trips
# Bump when the hand finder reads some photos differently without a new PREPROCESS_VERSION
# (which would refuse every model): cached features of those photos are then read again.
# 2: squares larger than the landmark model's input cut at the nearest pixel; 3: 7 x 7 tiles;
# 4: a hand kept from a presence of 0.8, not 0.5; 5: a photo with no hand searched closer;
# 6: the closer decode searched in finer tiles, a hand found in tiles kept from 0.9;
# 7: at most MAX_WINDOWS windows, no padded copy of a long picture, none under 32 pixels;
# 8: the second placement by the full landmark model, a hand found in tiles kept from 0.95;
# 9: a hand under a tenth of the picture kept from 0.95 however it was found.
_READING = 9


class UnreadablePhoto(ValueError):
    """A labelled photo that cannot be decoded: labelled data is used whole or not at all."""


class HandReadingFailed(RuntimeError):
    """A process finding hands died (killed, out of memory): nothing was read or cached."""


def read_features(paths: list[Path], *, progress: Callable[[int, int], None] | None = None,
                  processes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, FEATURE_COUNT) features of each photo's surest hand as served, and (N,) whether
    one was found (rows without a hand are zeros)."""
    from signdigits.config.settings import get_settings

    folder = models_dir(get_settings().hand_models_dir)
    cached = _cache_file(paths, check_models(folder))
    if cached.is_file():
        with np.load(cached) as saved:
            if progress:
                progress(len(paths), len(paths))
            return saved["x"], saved["found"]
    x = np.zeros((len(paths), FEATURE_COUNT), np.float32)
    found = np.zeros(len(paths), bool)
    chunks = [list(range(i, min(i + _CHUNK, len(paths)))) for i in range(0, len(paths), _CHUNK)]
    workers = processes or min(os.cpu_count() or 1, max(1, len(chunks)))
    # spawn: the parent has often imported TensorFlow already, whose threads a fork copies
    # into a broken state.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_start, initargs=(str(folder),)) as pool:
        done = 0
        read = pool.map(_read_chunk, [[str(paths[i]) for i in c] for c in chunks])
        try:
            for chunk, rows in zip(chunks, _until_broken(read), strict=True):
                for i, row in zip(chunk, rows, strict=True):
                    if isinstance(row, str):
                        raise UnreadablePhoto(f"{paths[i]}: {row} (fix or remove it)")
                    if row is not None:
                        x[i], found[i] = row, True
                done += len(chunk)
                if progress:
                    progress(done, len(paths))
        except BaseException:
            # Else leaving the block waited for every photo still queued (the whole folder,
            # after a broken photo near the start, or after Ctrl-C).
            pool.shutdown(cancel_futures=True)
            raise
    cached.parent.mkdir(parents=True, exist_ok=True)
    # Named per process: two processes reading the same folder (two test runners, `cv` in
    # one terminal and `train` in another) each write whole files, and the last one wins.
    partial = cached.with_suffix(f".{os.getpid()}.partial.npz")
    np.savez(partial, x=x, found=found)
    partial.replace(cached)
    return x, found


Rows = list[np.ndarray | str | None]


def _until_broken(rows: Iterator[Rows]) -> Iterator[Rows]:
    """The pool's results; a process that died is one line, not BrokenProcessPool's
    traceback (which names neither the cause nor the photos)."""
    try:
        yield from rows
    except BrokenProcessPool:
        raise HandReadingFailed(
            "a process finding the hands died before it finished (killed, or out of "
            "memory?); nothing was kept: run it again") from None


def _cache_file(paths: list[Path], model_hashes: dict[str, str]) -> Path:
    h = hashlib.sha256(f"{PREPROCESS_VERSION} {FEATURES_VERSION} {_READING} "
                       f"{sorted(model_hashes.items())}".encode())
    for path in paths:
        found = path.stat()
        h.update(f"{path.resolve()}\0{found.st_size}\0{found.st_mtime_ns}\n".encode())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "signdigits" / "hand-features" / f"{h.hexdigest()[:32]}.npz"


_folder: str | None = None


def _start(folder: str) -> None:
    global _folder
    _folder = folder


@cache
def _finder():
    from signdigits.serving.hands.finder import HandFinder

    assert _folder is not None
    return HandFinder(Path(_folder))


def _read_chunk(paths: list[str]) -> list[np.ndarray | str | None]:
    from signdigits.serving.hands.features import hand_features
    from signdigits.serving.reader import look

    rows: list[np.ndarray | str | None] = []
    for path in paths:
        try:
            _, hands = look(_finder(), path)
        except ImageError as exc:
            rows.append(str(exc))
            continue
        rows.append(hand_features(hands[0].landmarks.points) if hands else None)
    return rows
