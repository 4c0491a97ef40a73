"""The in-process figures of ``signdigits bench``: the files, the ceilings, the original way.

The ceiling decodes, preprocesses and classifies in one process on the same cores as the
workers, with the runtime they use (or with TensorFlow, for comparison); the original
way is one ``model.predict`` per image, as the project we started from did.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

CHUNK = 256


def build_folder(source: Path, target: Path, count: int) -> list[Path]:
    """``count`` image files made from the images under ``source``, 1,000 per subfolder."""
    from signdigits.producer.scan import scan_folder

    originals = [source / p for p in scan_folder(source) if isinstance(p, str)]
    if not originals:
        raise ValueError(f"{source}: no images to copy")
    for original in originals:  # into the page cache, so no measurement reads a cold disk
        original.read_bytes()
    made = []
    for i in range(count):
        original = originals[i % len(originals)]
        path = target / f"{i // 1000:04d}" / f"{i:07d}{original.suffix.lower()}"
        if i % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(original, path)  # same bytes, no disk: a hard link is a real file
        except OSError:
            shutil.copyfile(original, path)
        made.append(path)
    return made


def tensorflow_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ValueError, ImportError):
        return False


def measure_ceiling(files: list[Path], threads: int, *, runtime: str = "onnx",
                    model_path: Path | None = None) -> float:
    """Images per second decoding and classifying in one process with ``threads`` threads.

    Decoding the next chunk overlaps classifying this one (as two worker processes
    overlap), so this is the best one process does on the same cores.
    """
    from signdigits.serving.classifier import Classifier
    from signdigits.serving.preprocess import preprocess_image

    classifier = Classifier(model_path, threads=threads, runtime=runtime)
    classifier.warm_up(CHUNK)
    chunks = [files[i : i + CHUNK] for i in range(0, len(files), CHUNK)]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        upcoming = [pool.submit(preprocess_image, path) for path in chunks[0]]
        for index in range(len(chunks)):
            pixels = np.stack([future.result() for future in upcoming])
            if index + 1 < len(chunks):
                upcoming = [pool.submit(preprocess_image, path) for path in chunks[index + 1]]
            classifier.classify(pixels)
    return len(files) / (time.perf_counter() - started)


def measure_original(files: list[Path], model_path: Path | None = None) -> float:
    """One ``model.predict`` per image, as the original project's web page did."""
    from signdigits.serving.classifier import import_tensorflow

    import_tensorflow()
    import keras

    import signdigits.serving.layers  # noqa: F401 - custom layers
    from signdigits.serving.artifact import read_model_info, resolve_model_path
    from signdigits.serving.preprocess import preprocess_image

    info = read_model_info(resolve_model_path(model_path))
    model = keras.saving.load_model(info.served_file("tensorflow"), compile=False)
    model.predict(np.zeros((1, 64, 64, 1), np.float32), verbose=0)
    started = time.perf_counter()
    for path in files:
        model.predict(preprocess_image(path)[None, ..., None], verbose=0)
    return len(files) / (time.perf_counter() - started)
