"""Labelled data in the two layouts users have, and the signer-disjoint split.

Layout 1 is one folder per digit (the folder's name is the true digit); layout 2 is the
``X.npy`` / ``Y.npy`` pair (N x 64 x 64 floats, one-hot labels in the dataset's class
order). Both loaders return the same :class:`LabelledImages`, so training from either
gives the model the same inputs.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from signdigits.files.paths import is_image_name
from signdigits.files.reading import ImageError
from signdigits.serving.model_input import IMAGE_SIZE
from signdigits.serving.preprocess import preprocess_image
from signdigits.training.labels import NPY_CLASS_TO_DIGIT, NUM_CLASSES, digit_to_class

_COUNTER = re.compile(r"(\d+)")
# A gap in the photo counter larger than this starts a new signer even if digits rise.
_SIGNER_GAP = 5
# Several --data folders: folder k's signer ids are k * SOURCE_STRIDE + its own ids, so
# they never meet, and split_by_signer splits each folder on its own (folder 0 exactly
# as when it is given alone).
SOURCE_STRIDE = 1 << 32
# `signdigits export-reviews` writes this beside the digit folders: file, job, path, ...
REVIEW_MANIFEST = "reviews.csv"


class DataError(ValueError):
    """The data folder is not in a layout we can read; the message says why."""


@dataclass(frozen=True)
class LabelledImages:
    x: np.ndarray  # (N, 64, 64) float32 in [0, 1]
    classes: np.ndarray  # (N,) int class index in the dataset's order
    groups: np.ndarray  # (N,) int signer id; images of one signer share it
    names: list[str]

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def digits(self) -> np.ndarray:
        return np.asarray(NPY_CLASS_TO_DIGIT)[self.classes]

    def subset(self, index: np.ndarray) -> LabelledImages:
        return LabelledImages(
            self.x[index], self.classes[index], self.groups[index], [self.names[i] for i in index]
        )

    def digest(self) -> str:
        """sha256 of pixels and labels: identifies the training data in the artifact."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.x.astype(np.float32)).tobytes())
        h.update(np.ascontiguousarray(self.classes.astype(np.int64)).tobytes())
        return h.hexdigest()


def load_labelled(path: Path, *, progress: Callable[[int, int], None] | None = None):
    """Read either layout from ``path``; npy when it holds X.npy/Y.npy, else folders."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a folder")
    if _npy_file(path, "x") and _npy_file(path, "y"):
        return load_npy(path)
    return load_digit_folders(path, progress=progress)


def load_sources(paths: list[Path], *, progress: Callable[[str, int, int], None] | None = None
                 ) -> LabelledImages:
    """Several data folders as one: signer groups kept apart per folder (see SOURCE_STRIDE);
    names of the second and later folders prefixed with ``k:`` (their folder's place)."""
    parts = []
    for k, path in enumerate(paths):
        part = load_labelled(path, progress=partial(progress, str(path)) if progress else None)
        if k:
            part = LabelledImages(part.x, part.classes, part.groups + k * SOURCE_STRIDE,
                                  [f"{k}:{name}" for name in part.names])
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    return LabelledImages(np.concatenate([p.x for p in parts]),
                          np.concatenate([p.classes for p in parts]),
                          np.concatenate([p.groups for p in parts]),
                          [name for p in parts for name in p.names])


def load_digit_folders(
    root: Path, *, progress: Callable[[int, int], None] | None = None
) -> LabelledImages:
    files = list_labelled_files(root)
    if not files:
        raise DataError(f"{root}: no images in folders named 0-9 (nor X.npy/Y.npy)")
    x = np.empty((len(files), IMAGE_SIZE, IMAGE_SIZE), np.float32)

    def decode(i: int) -> None:
        try:
            x[i] = preprocess_image(files[i][0])
        except ImageError as exc:  # labelled data is used whole or not at all: no skipping
            raise DataError(f"{files[i][0]}: {exc} (fix or remove it)") from None

    with ThreadPoolExecutor(max_workers=4) as pool:
        for done, _ in enumerate(pool.map(decode, range(len(files))), start=1):
            if progress and (done % 100 == 0 or done == len(files)):
                progress(done, len(files))
    return LabelledImages(
        x=x,
        classes=np.asarray([digit_to_class(d) for _, d in files], np.int64),
        groups=_export_groups(root, files) if (root / REVIEW_MANIFEST).is_file()
        else file_signer_groups(files),
        names=[str(path.relative_to(root)) for path, _ in files],
    )


def list_labelled_files(root: Path) -> list[tuple[Path, int]]:
    """(path, digit) for every image under ``root/0`` .. ``root/9``, in photo-counter order."""
    return sorted(_labelled_files(root), key=lambda item: (_counter(item[0].name), item[0].name))


def file_signer_groups(files: list[tuple[Path, int]]) -> np.ndarray:
    return signer_groups([_counter(path.name) for path, _ in files], [d for _, d in files])


def _export_groups(root: Path, files: list[tuple[Path, int]]) -> np.ndarray:
    """Signers of an export of reviewed images: runs of the photo counter of each file's
    original name (the manifest's ``path``) within each job; no group spans two jobs."""
    import csv

    manifest = root / REVIEW_MANIFEST
    try:  # as export-reviews wrote it, or as a spreadsheet saved it again (BOM, ";")
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{manifest}: cannot read it ({exc})") from None
    first_line = text.partition("\n")[0]
    dialect = max(",;\t", key=first_line.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=dialect)
    if not {"file", "job", "path"} <= set(reader.fieldnames or ()):
        raise DataError(f"{manifest}: not the manifest export-reviews writes (columns file, "
                        "job, path); restore it, or remove it to group by file name")
    origin = {row["file"]: (row["job"] or "", row["path"] or "") for row in reader}
    keys = [str(path.relative_to(root)) for path, _ in files]
    by_job: dict[str, list[int]] = {}
    for i, key in enumerate(keys):  # a file the manifest does not name: a job of its own
        by_job.setdefault(origin[key][0] if key in origin else f"?{i}", []).append(i)
    groups = np.empty(len(files), np.int64)
    first = 0
    for job in sorted(by_job):
        members = by_job[job]
        names = [Path(origin[keys[i]][1]).name if keys[i] in origin else files[i][0].name
                 for i in members]
        local = signer_groups([_counter(name) for name in names], [files[i][1] for i in members])
        groups[members] = local + first
        first += int(local.max()) + 1
    return groups


def _labelled_files(root: Path) -> Iterator[tuple[Path, int]]:
    for digit in range(NUM_CLASSES):
        folder = root / str(digit)
        if folder.is_dir():
            for path in folder.iterdir():
                if is_image_name(path.name):
                    yield path, digit


def _counter(name: str) -> int:
    found = _COUNTER.findall(name)
    return int(found[-1]) if found else -1


def signer_groups(counters: list[int], digits: list[int]) -> np.ndarray:
    """Signer id per image, from runs of the camera's photo counter.

    Each participant signed 0 through 9 in a row, so along the counter a new signer starts
    where the digit falls back (or the counter jumps). Files without a counter each get a
    group of their own, which keeps them on one side of any split.
    """
    order = sorted(range(len(counters)), key=lambda i: counters[i])
    groups = np.empty(len(counters), np.int64)
    group, previous = -1, None
    for i in order:
        if counters[i] < 0 or previous is None:
            group += 1
        else:
            prev_counter, prev_digit = previous
            if digits[i] < prev_digit or counters[i] - prev_counter > _SIGNER_GAP:
                group += 1
        groups[i] = group
        previous = None if counters[i] < 0 else (counters[i], digits[i])
    return groups


def _npy_file(folder: Path, stem: str) -> Path | None:
    for candidate in folder.iterdir():
        if candidate.suffix.lower() == ".npy" and candidate.stem.lower() == stem:
            return candidate
    return None


def _load_array(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # truncated, corrupt, pickled, a folder
        raise DataError(f"{path}: cannot read it as a .npy array ({exc})") from None
    if not isinstance(array, np.ndarray) or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DataError(f"{path}: expected numbers, got {getattr(array, 'dtype', 'an archive')}")
    return array


def load_npy(folder: Path) -> LabelledImages:
    """Layout 2, checked whole: each way it can be wrong is one line naming the file (a
    short groups.npy dropped images, an all-zero Y trained everything as class 0, NaN
    pixels passed the range check)."""
    x_path, y_path = _npy_file(folder, "x"), _npy_file(folder, "y")
    if x_path is None or y_path is None:
        raise DataError(f"{folder}: needs X.npy and Y.npy")
    x = _load_array(x_path).astype(np.float32)
    y = _load_array(y_path)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"{x_path}: expected N x {IMAGE_SIZE} x {IMAGE_SIZE}, got {x.shape}")
    if not len(x):
        raise DataError(f"{x_path}: holds no images")
    if y.ndim != 2 or y.shape != (len(x), NUM_CLASSES):
        raise DataError(f"{y_path}: expected one-hot {len(x)} x {NUM_CLASSES}, got {y.shape}")
    if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
        raise DataError(f"{y_path}: each row must be one-hot (a single 1, the rest 0)")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise DataError(f"{x_path}: pixel values must lie in [0, 1]")
    groups_path = _npy_file(folder, "groups")
    if groups_path is not None:
        groups = _load_array(groups_path)
        if groups.shape != (len(x),) or not np.issubdtype(groups.dtype, np.integer):
            raise DataError(f"{groups_path}: expected {len(x)} integer signer ids, got "
                            f"{groups.dtype} {groups.shape}")
        groups = groups.astype(np.int64)
    else:
        # The public X.npy carries no signer information: fall back to one group per image.
        groups = np.arange(len(x), dtype=np.int64)
    names_path = folder / "names.txt"
    names = [f"{x_path.name}[{i}]" for i in range(len(x))]
    if names_path.exists():
        with names_path.open(encoding="utf-8", errors="replace", newline="") as handle:
            names = handle.read().removesuffix("\n").split("\n")
    if len(names) != len(x):
        raise DataError(f"{names_path}: {len(names)} names for {len(x)} images")
    return LabelledImages(x, y.argmax(axis=1).astype(np.int64), groups, names)


def save_npy(data: LabelledImages, folder: Path) -> None:
    """Write ``data`` as layout 2 (plus groups.npy and names.txt, which layout 2 lacks)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "X.npy", data.x.astype(np.float32))
    np.save(folder / "Y.npy", np.eye(NUM_CLASSES, dtype=np.float32)[data.classes])
    np.save(folder / "groups.npy", data.groups)
    # One name a line: a line break inside a file's name is written as \n or \r (names
    # only label reports; an unescaped one shifted every later name).
    names = (name.replace("\n", "\\n").replace("\r", "\\r") for name in data.names)
    with (folder / "names.txt").open("w", encoding="utf-8", newline="") as handle:
        handle.write("\n".join(names) + "\n")


def split_by_signer(
    groups: np.ndarray, *, seed: int, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation / test indices with every signer on exactly one side.

    With several data folders (ids ``k * SOURCE_STRIDE + ...``), each folder's signers are
    split on their own with the same seed: the first folder exactly as when it is alone,
    so adding an export never moves one of its signers to another side. A later folder
    gets no minimum of one signer per side: a small export goes wholly to training.
    """
    test_groups: set[int] = set()
    val_groups: set[int] = set()
    sources = groups // SOURCE_STRIDE
    for source in np.unique(sources).tolist():
        unique = np.unique(groups[sources == source])
        rng = np.random.default_rng(seed)
        shuffled = rng.permutation(unique)
        minimum = 1 if source == sources.min() else 0
        n_test = max(minimum, round(len(unique) * test_fraction))
        n_val = max(minimum, round(len(unique) * val_fraction))
        test_groups |= set(shuffled[:n_test].tolist())
        val_groups |= set(shuffled[n_test : n_test + n_val].tolist())
    side = np.array(
        [2 if g in test_groups else 1 if g in val_groups else 0 for g in groups.tolist()]
    )
    return np.flatnonzero(side == 0), np.flatnonzero(side == 1), np.flatnonzero(side == 2)
