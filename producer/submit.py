"""Submit a folder: record the job and its manifest, then enqueue its batches."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from broker.messages import TASK_NAME, display_name
from config.settings import Settings
from db.models import Job
from db.queries import add_manifest, cancel_job, create_job, pending_batches, pending_images
from files.paths import IMAGE_EXTENSIONS, inside_allowed_roots
from files.reading import ImageError, JobFolder
from producer.scan import FolderError, scan_folder
from serving.artifact import read_model_info, resolve_model_path

_MANIFEST_CHUNK = 5000
_SMALLEST_TAIL = 16  # images in the smallest batch of a job's shaped tail

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class SubmittedJob:
    job_id: str
    total_images: int
    total_batches: int


def submit_folder(
    root: Path,
    *,
    settings: Settings,
    sessions: sessionmaker[Session],
    app: Celery,
    threshold: float | None = None,
    batch_size: int | None = None,
    inline: bool | None = None,
    progress: Progress | None = None,
) -> SubmittedJob:
    """Walk ``root``, writing the job's manifest and enqueueing its batches as it goes.

    The manifest is committed a few thousand images at a time, each part's batches
    enqueued right after, so workers start while a big folder is still being walked. A
    missing or image-less folder raises :class:`FolderError` before anything is committed
    or enqueued; a failure later marks the job failed with the reason.
    """
    root = Path(root).expanduser().resolve()
    check_allowed_root(root, settings)
    model = read_model_info(resolve_model_path(settings.model_path))
    batch_size = batch_size or settings.batch_size
    inline = settings.inline if inline is None else inline
    threshold = _pick_threshold(threshold, settings.threshold, model.default_threshold)
    # Whole batches per part, so no batch is enqueued before all of its rows exist.
    part_size = batch_size * max(1, _MANIFEST_CHUNK // batch_size)
    paths = scan_folder(root)
    # A small first part gets every worker busy at once; later parts are larger, as
    # fewer commits make the walk itself faster.
    wanted = batch_size * 4
    part = list(islice(paths, wanted))
    if not part:
        raise FolderError(f"{root}: no images found (looked for {_extensions()})")
    job = Job(
        id=uuid.uuid4().hex, root=str(root), threshold=threshold, batch_size=batch_size,
        total_images=0, total_batches=0, model_version=model.version, inline=inline,
    )
    with sessions.begin() as session:
        create_job(session, job=job)
    total = batches = 0
    try:
        while part:
            # A part shorter than asked for is the walk's last: its tail can be shaped.
            sizes = batch_sizes(len(part), batch_size, last=len(part) < wanted)
            numbers = [batches + n for n, size in enumerate(sizes) for _ in range(size)]
            with sessions.begin() as session:
                add_manifest(session, job_id=job.id, rows=list(zip(numbers, part, strict=True)))
            enqueue_batches(
                app, sessions=sessions, job_id=job.id,
                batches=range(batches, batches + len(sizes)),
                root=root if inline else None, settings=settings,
            )
            total, batches = total + len(part), batches + len(sizes)
            if progress:
                progress("found and enqueued", total)
            with sessions.begin() as session:
                recorded = session.get(Job, job.id)
                if recorded.cancelled_at is not None:
                    # Cancelled while we walked: this part's rows came after the cancel.
                    cancel_job(session, job=recorded)
                    break
            wanted = part_size
            part = list(islice(paths, wanted))
        with sessions.begin() as session:
            recorded = session.get(Job, job.id)
            recorded.total_images = total
            recorded.total_batches = batches
    except BaseException as exc:
        with sessions.begin() as session:
            session.get(Job, job.id).failure = (
                f"submission stopped after {total:,} images: {exc.__class__.__name__}: {exc}"
            )
        raise
    return SubmittedJob(job.id, total, batches)


def batch_sizes(count: int, batch_size: int, *, last: bool) -> list[int]:
    """How ``count`` images are cut into batches: full ones, and at a job's end, halving.

    Every worker is busy until the queue runs dry; then each finishes the batch it holds,
    and the job waits for the slowest. With equal batches that wait averages half a batch
    on a process that has nothing else to do. So a job's last full batch and its remainder
    go out as batches that halve until fewer than ``2 * _SMALLEST_TAIL`` images are left
    (128 + 40 images: 84, 42, 21, 21), and the last to finish holds little.
    """
    full, rest = divmod(count, batch_size)
    if not last or batch_size <= 2 * _SMALLEST_TAIL:
        return [batch_size] * full + ([rest] if rest else [])
    # A job smaller than one batch is cut too, or it would keep a single worker busy.
    sizes = [batch_size] * (full - 1) if full else []
    tail = batch_size + rest if full else rest
    while tail > 2 * _SMALLEST_TAIL:
        sizes.append(tail // 2)
        tail -= tail // 2
    return [*sizes, tail]


def check_allowed_root(root: Path, settings: Settings) -> None:
    if not inside_allowed_roots(root, settings.allowed_roots):
        raise FolderError(f"{root}: outside SIGNDIGITS_ALLOWED_ROOTS")


def _pick_threshold(*candidates: float | None) -> float:
    value = next(c for c in candidates if c is not None)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"threshold {value} must lie between 0 and 1")
    return value


def _extensions() -> str:
    return ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))


def enqueue_batches(
    app: Celery,
    *,
    sessions: sessionmaker[Session],
    job_id: str,
    batches: range | list[int],
    root: Path | None,
    settings: Settings,
) -> int:
    """Send one task per batch; with ``root`` set, the image bytes travel inside them."""
    sent = 0
    with app.producer_or_acquire() as producer:
        for batch in batches:
            kwargs = {}
            if root is not None:
                kwargs["inline"] = _read_inline(
                    sessions, job_id=job_id, batch=batch, root=root, settings=settings
                )
            # The shadow name is what Flower and the worker logs show for this task.
            app.send_task(
                TASK_NAME, args=[job_id, batch], kwargs=kwargs, producer=producer,
                shadow=display_name(job_id, batch),
            )
            sent += 1
    return sent


def resume_job(
    app: Celery, *, sessions: sessionmaker[Session], job: Job, settings: Settings
) -> int:
    """Re-enqueue every batch that still has pending images (after a broker loss)."""
    with sessions() as session:
        batches = pending_batches(session, job_id=job.id)
    root = Path(job.root) if job.inline else None
    return enqueue_batches(
        app, sessions=sessions, job_id=job.id, batches=batches, root=root, settings=settings
    )


def _read_inline(
    sessions: sessionmaker[Session], *, job_id: str, batch: int, root: Path, settings: Settings
) -> dict[str, dict[str, str]]:
    """Image id -> ``{"data": base64}``, or ``{"error": message}`` for a file that cannot go.

    The producer reads with the same size cap and messages as a worker would, so a worker
    that cannot see this disk still stores the right error for an oversized or unreadable
    file, and a failed read never fails the job.
    """
    with sessions() as session:
        images = pending_images(session, job_id=job_id, batch=batch)
    cap = min(settings.max_file_bytes, settings.inline_max_file_bytes)
    folder = JobFolder(root, allowed_roots=settings.allowed_roots)
    payload: dict[str, dict[str, str]] = {}
    for image in images:
        try:
            data = folder.read(image.path, max_bytes=cap)
            payload[str(image.id)] = {"data": base64.b64encode(data).decode("ascii")}
        except ImageError as exc:
            payload[str(image.id)] = {"error": str(exc)}
    return payload
