"""The in-process ceiling of ``signdigits bench``: the reading path with no queue or database.

W processes forked from this one, as Celery forks its pool, each building its own
:class:`~serving.reader.HandReader` after the fork (LiteRT and ONNX Runtime are not
fork-safe) with one thread each, as a worker process has. They take chunks of the files
from one shared counter until none is left, so a process slowed by hard photos (the
padded retry doubles a photo's cost) takes fewer: ``read_photo``, ``HandReader.find`` on
each photo (again on a closer decode when it found none or a small one: ``look_again``),
then one ``classify`` call per chunk, the worker's path without the broker, the database
and the task. Each stage's CPU seconds come from the reader's own counters
(:attr:`HandFinder.seconds`, :attr:`HandReader.classify_seconds`) and, for decoding,
from the process clock around ``read_photo``.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

CHUNK = 64  # images per classify call: a worker's INFERENCE_PART
STAGES = ("decode", "palms", "landmarks", "classify")
READY_TIMEOUT = 120.0  # seconds for every process to load its models


@dataclass(frozen=True)
class Ceiling:
    images: int
    seconds: float  # wall, from every process ready to the last one done
    stage_seconds: dict[str, float]  # CPU seconds by stage (STAGES), summed over processes
    with_hand: int  # photos in which a hand was found
    errors: int  # files read_photo refused
    hands: int = 0  # hands read, over every photo (several on a group photo)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds

    def cpu_ms_per_image(self) -> dict[str, float]:
        return {stage: 1000 * self.stage_seconds[stage] / self.images for stage in STAGES}

    def __add__(self, other: Ceiling) -> Ceiling:
        """Two runs as one: their images and seconds summed."""
        return Ceiling(self.images + other.images, self.seconds + other.seconds,
                       {s: self.stage_seconds[s] + other.stage_seconds[s] for s in STAGES},
                       self.with_hand + other.with_hand, self.errors + other.errors,
                       self.hands + other.hands)


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


def measure_ceiling(files: list[Path], workers: int, *, runtime: str = "onnx",
                    model_path: Path | None = None, hand_models: Path | None = None,
                    max_pixels: int | None = None) -> Ceiling:
    """The files read in ``workers`` forked processes; wall time from all ready to all done."""
    from signdigits.config.settings import DEFAULT_MAX_IMAGE_PIXELS

    context = multiprocessing.get_context("fork")
    next_chunk = context.Value("i", 0)
    go = context.Event()
    results: multiprocessing.Queue = context.Queue()
    job = _Share(files, runtime, model_path, hand_models, max_pixels or DEFAULT_MAX_IMAGE_PIXELS)
    processes = [context.Process(target=_read_share, args=(job, next_chunk, go, results),
                                 daemon=True, name=f"ceiling-{n}") for n in range(workers)]
    for process in processes:
        process.start()
    try:
        _collect(results, processes, "ready", timeout=READY_TIMEOUT)
        started = time.perf_counter()
        go.set()
        done = _collect(results, processes, "done", timeout=None)
        seconds = time.perf_counter() - started
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join()
    return Ceiling(len(files), seconds,
                   {s: sum(d["seconds"][s] for d in done) for s in STAGES},
                   sum(d["with_hand"] for d in done), sum(d["errors"] for d in done),
                   sum(d["hands"] for d in done))


@dataclass(frozen=True)
class _Share:
    """What every forked process reads (inherited through the fork, never pickled)."""

    files: list[Path]
    runtime: str
    model_path: Path | None
    hand_models: Path | None
    max_pixels: int


def _collect(results: multiprocessing.Queue, processes: list, kind: str, *,
             timeout: float | None) -> list[dict]:
    """One ``kind`` message from every process; RuntimeError if one fails or dies first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    got: list[dict] = []
    while len(got) < len(processes):
        try:
            message = results.get(timeout=0.5)
        except queue.Empty:
            dead = [p for p in processes if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a ceiling process died (exit {dead[0].exitcode})") from None
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the ceiling's processes were not {kind} within "
                                   f"{timeout:.0f} s") from None
            continue
        if message["kind"] == "error":
            raise RuntimeError(f"a ceiling process failed:\n{message['error']}")
        got.append(message)
    return got


def _read_share(job: _Share, next_chunk, go, results) -> None:
    """In a forked process: build a reader, say ready, read chunks until none is left."""
    try:
        from PIL import Image

        from signdigits.files.reading import ImageError
        from signdigits.serving.classifier import Classifier
        from signdigits.serving.hands.finder import HandFinder, StageSeconds
        from signdigits.serving.hands.models import models_dir
        from signdigits.serving.photo import read_photo
        from signdigits.serving.reader import HandReader, first_look, look_again

        classifier = Classifier(job.model_path, threads=1, runtime=job.runtime)
        classifier.warm_up(CHUNK)
        finder = HandFinder(models_dir(job.hand_models), threads=1)
        reader = HandReader(classifier, finder)
        reader.classify([reader.find(Image.new("RGB", (320, 240), (128, 128, 128)))])
        finder.seconds, reader.classify_seconds = StageSeconds(), 0.0
        results.put({"kind": "ready"})
        go.wait()
        decode, with_hand, hands, errors = 0.0, 0, 0, 0
        while True:
            with next_chunk.get_lock():
                start = next_chunk.value * CHUNK
                next_chunk.value += 1
            if start >= len(job.files):
                break
            found = []
            for path in job.files[start:start + CHUNK]:
                began = time.process_time()
                try:
                    photo = read_photo(path, max_pixels=job.max_pixels)
                except ImageError:
                    errors += 1
                    continue
                finally:
                    decode += time.process_time() - began
                found.append(look_again(reader, path, photo, first_look(reader, photo),
                                        max_pixels=job.max_pixels)[1])
            readings = reader.classify(found)
            with_hand += sum(bool(r.hands) for r in readings)
            hands += sum(len(r.hands) for r in readings)
        seconds = {"decode": decode, "palms": finder.seconds.palms,
                   "landmarks": finder.seconds.landmarks,
                   "classify": reader.classify_seconds}
        results.put({"kind": "done", "seconds": seconds, "with_hand": with_hand, "hands": hands,
                     "errors": errors})
    except BaseException:  # noqa: BLE001 - said to the parent, which raises it
        results.put({"kind": "error", "error": traceback.format_exc()})
