"""``signdigits bench``: the pipeline against the in-process ceiling of the same path.

Both figures come from one run, on the same files, models and machine:
1. the ceiling: ``read_photo``, the hand finder and the classifier in W processes forked
   from this one (W = the workers' processes), one thread each, no queue or database
   (:mod:`bench.model`); measured before and after the end-to-end run;
2. end to end: ``submit`` until every row is in the database, through a real Valkey and
   real worker processes.
Each also says where its CPU went, per image and stage (decode, palm detector, landmarks,
classifier): the ceiling from the readers' own counters, end to end from the ``cpu_*``
seconds each task returns.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from signdigits.bench.model import STAGES, Ceiling, build_folder, measure_ceiling
from signdigits.bench.procstat import (
    CpuSplit,
    children,
    cpu_seconds,
    machine_busy_seconds,
    peak_rss_mb,
)
from signdigits.bench.submit import SubmitBy, submit_by_command, web_server
from signdigits.broker.events import TaskEvents

# Progress and findings go to stderr; the figures (printed by the caller) to stdout.
console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Timeline:
    """Seconds after ``submit`` was started: where the end-to-end time went."""

    job_recorded: float
    first_result: float
    producer_done: float
    last_result: float
    all_stored: float  # when the last task's event arrived and no row was pending


@dataclass(frozen=True)
class EndToEnd:
    images_per_s: float
    producer_seconds: float | None  # unknown when a running server submitted
    producer_peak_mb: float | None
    worker_peak_mb: list[float]
    timeline: Timeline
    cpu: CpuSplit
    # Summed over the tasks: "runtime" and each phase of a batch (claim, decode_and_model,
    # store). Against workers x elapsed, shows how long the processes spent outside tasks.
    task_seconds: dict[str, float]
    tasks: int  # whose task-succeeded (or task-failed) event arrived: the job's batches


@dataclass(frozen=True)
class BenchResult:
    images: int
    workers: int
    ceiling: Ceiling  # both runs, before and after end to end, as one
    end_to_end: EndToEnd
    runtime: str = "onnx"

    @property
    def ratio_to_ceiling(self) -> float:
        return self.end_to_end.images_per_s / self.ceiling.images_per_s

    @property
    def pipeline_cpu_ms_per_image(self) -> float:
        """The CPU the pipeline's own processes spent on an image, end to end: unlike the
        images/s, the same on a shared, busy machine as on an idle one."""
        return 1000 * self.end_to_end.cpu.pipeline / self.images

    def cpu_bound_images_per_s(self, cores: int) -> float:
        """What that CPU allows on ``cores`` cores with nothing else running: an upper
        bound, which the submit's start and the last batches' tail keep end to end under."""
        return 1000 * cores / max(self.pipeline_cpu_ms_per_image, 1e-9)

    def end_to_end_cpu_ms(self) -> dict[str, float | None]:
        """CPU-ms per image by stage, from the tasks' ``cpu_*`` seconds; None for a stage
        the workers did not report."""
        seconds = self.end_to_end.task_seconds
        return {stage: None if f"cpu_{stage}" not in seconds
                else 1000 * seconds[f"cpu_{stage}"] / self.images for stage in STAGES}


def measure_end_to_end(folder: Path, *, count: int, workers: int, database_url: str,
                       batch_size: int, inline: bool = False,
                       submit_by: SubmitBy = SubmitBy.COMMAND) -> EndToEnd:
    """``submit`` in its own process (or a POST to a running web server), timed until no
    row of its job is pending."""
    from signdigits.broker.app import create_app
    from signdigits.config.settings import get_settings
    from signdigits.db.migrate import upgrade
    from signdigits.db.session import session_factory
    from signdigits.stack.local import LocalStack
    from signdigits.worker.readiness import wait_for_models

    settings = get_settings().model_copy(update={"database_url": database_url})
    name = f"bench-{os.getpid()}@localhost"
    stack = LocalStack(broker_url=settings.broker_url, database_url=database_url,
                       concurrency=workers, name=name)
    try:
        upgrade(database_url)
        _vacuum(database_url)
        url = stack.start()
        # SIGNDIGITS_INLINE is for a web server: a JSON submission carries no such option.
        env = {**os.environ, "SIGNDIGITS_BROKER_URL": url, "SIGNDIGITS_DATABASE_URL": database_url,
               "SIGNDIGITS_INLINE": "true" if inline else "false"}
        worker = stack.worker
        assert worker is not None  # started by stack.start()
        app = create_app(settings.model_copy(update={"broker_url": url}))
        try:  # the clock must time the pipeline, not TensorFlow loading in each process
            wait_for_models(app, name=name, alive=worker.alive)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}:\n{worker.log_tail()}") from None
        with web_server(env) if submit_by is SubmitBy.HTTP else nullcontext() as server:
            pool = [worker.process.pid, *children(worker.process.pid)]
            broker = stack.broker.pid if stack.broker else None
            producer = server.process.pid if server else None
            # Completions and seconds only: no per-batch history kept on a measured machine.
            completions = TaskEvents(app, history=False).start()
            before = _cpu_snapshot(pool, broker, producer)
            wall_start, started = time.time(), time.perf_counter()
            if server:
                submitted = server.submit(folder, batch_size=batch_size)
            else:
                submitted = submit_by_command(folder, env=env, batch_size=batch_size,
                                              inline=inline, started=started)
            job_id = submitted.job_id
            sessions = session_factory(database_url)
            completions.expect(_total_batches(sessions, job_id=job_id))
            elapsed = _wait_until_stored(completions, database_url, job_id=job_id,
                                         worker=worker) - started
            cpu = _cpu_split(before, _cpu_snapshot(pool, broker, producer),
                             available=elapsed * (os.cpu_count() or 1))
            producer_peak = peak_rss_mb(producer) if producer else submitted.producer_peak_mb
        peaks = [peak_rss_mb(pid) for pid in pool]
        timeline = _read_timeline(sessions, job_id=job_id, wall_start=wall_start,
                                  producer_done=submitted.producer_seconds, all_stored=elapsed)
        _delete_job(sessions, job_id=job_id)
        _vacuum(database_url)
        return EndToEnd(count / elapsed, timeline.producer_done, producer_peak, peaks, timeline,
                        cpu, completions.task_seconds, completions.finished)
    finally:
        stack.stop()


def describe_tasks(task_seconds: dict[str, float], *, process_seconds: float) -> str:
    """One line: the worker processes' seconds in tasks, by phase, and outside any task."""
    phases = ", ".join(f"{name} {value:.2f}" for name, value in wall_phases(task_seconds).items()
                       if name != "runtime")
    busy = task_seconds.get("runtime", 0.0)
    return (f"worker processes: {process_seconds:.1f} s, of which in tasks {busy:.2f} "
            f"({phases}), outside any task {process_seconds - busy:.2f} (waiting for the "
            "first batch, between tasks, after their last)")


def wall_phases(task_seconds: dict[str, float]) -> dict[str, float]:
    """The tasks' wall seconds (runtime, claim, decode_and_model, store), without the
    ``cpu_*`` stage seconds the same results carry."""
    return {name: value for name, value in task_seconds.items() if not name.startswith("cpu_")}


def _cpu_snapshot(pool: list[int], broker: int | None,
                  producer: int | None = None) -> dict[str, float]:
    """CPU seconds so far, by who; ``producer`` is a live web server's pid, or None for a
    ``submit`` process (counted once reaped, as this process's only child meanwhile)."""
    def own(who: int) -> float:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    return {
        "busy": machine_busy_seconds(),
        "workers": sum(cpu_seconds(pid) for pid in pool),
        "broker": cpu_seconds(broker) if broker else 0.0,
        "observer": own(resource.RUSAGE_SELF),
        "producer": cpu_seconds(producer) if producer else own(resource.RUSAGE_CHILDREN),
    }


def _cpu_split(before: dict[str, float], after: dict[str, float], *, available: float) -> CpuSplit:
    return CpuSplit(available=available, **{key: after[key] - before[key] for key in before})


def _wait_until_stored(completions: TaskEvents, database_url: str, *, job_id: str,
                       worker) -> float:
    """perf_counter when every task has finished and no image of the job is pending.

    The task events say when; the database, probed twice a second, says whether (and
    stands in for the events should any be lost).
    """
    from signdigits.db.batches import any_pending
    from signdigits.db.session import engine_for

    try:
        with engine_for(database_url).connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            trust_events = True
            while True:
                finished = completions.wait(0.5)
                for error in completions.failed.values():
                    raise RuntimeError(f"a bench task failed: {error}")
                if not any_pending(connection, job_id=job_id):
                    done_at = completions.finished_at
                    if finished and trust_events and done_at is not None:
                        return done_at
                    return time.perf_counter()
                if not worker.alive():
                    raise RuntimeError(f"bench worker died:\n{worker.log_tail()}")
                if finished:  # every task reported, yet rows are pending: the database decides
                    trust_events = False
                    time.sleep(0.02)
    finally:
        completions.stop()


def _vacuum(database_url: str) -> None:
    """PostgreSQL: reclaim dead rows and refresh statistics, so no run pays for an earlier.

    A server with autovacuum off (this machine's) keeps every row version that a run's
    updates and deletions leave behind: earlier runs had left 1.5 million (435 MB) for
    each later run's queries to step over, and no statistics for the planner at all.
    """
    from sqlalchemy import text

    from signdigits.db.models import Batch, Image, Job
    from signdigits.db.session import engine_for

    engine = engine_for(database_url)
    if engine.dialect.name != "postgresql":
        return
    tables = ", ".join(model.__tablename__ for model in (Image, Batch, Job))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"VACUUM (ANALYZE) {tables}"))


def _delete_job(sessions, *, job_id: str) -> None:
    """Repeated runs against one database would otherwise grow it, and slow later runs."""
    from signdigits.db.deleted import delete_job_rows

    with sessions.begin() as session:  # counted for /metrics, as `signdigits delete` does
        delete_job_rows(session, job_id=job_id)


def _total_batches(sessions, *, job_id: str, timeout: float = 600.0) -> int:
    """The job's batches, once its walk is over (a web server answers before it is)."""
    from signdigits.db.models import Job

    deadline = time.monotonic() + timeout
    while True:
        with sessions() as session:
            job = session.get(Job, job_id)
            if job.submitted_at is not None:
                return job.total_batches
            if job.submission_stopped:
                raise RuntimeError(f"the submission stopped: {job.submission_stopped}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} was not submitted within {timeout:.0f} s")
        time.sleep(0.05)


def _read_timeline(sessions, *, job_id: str, wall_start: float, producer_done: float | None,
                   all_stored: float) -> Timeline:
    """``producer_done`` None: a web server submitted, and the job's ``submitted_at`` says."""
    from sqlalchemy import func, select

    from signdigits.db.models import Image, Job, as_utc

    with sessions() as session:
        job = session.get(Job, job_id)
        created, submitted = job.created_at, job.submitted_at
        first, last = session.execute(
            select(func.min(Image.finished_at), func.max(Image.finished_at))
            .where(Image.job_id == job_id)
        ).one()

    def since_start(moment) -> float:
        return as_utc(moment).timestamp() - wall_start

    if producer_done is None:
        producer_done = since_start(submitted)
    return Timeline(since_start(created), since_start(first), producer_done,
                    since_start(last), all_stored)


def describe_stages(cpu_ms: dict[str, float | None]) -> str:
    return ", ".join(f"{stage} " + ("n/a" if ms is None else f"{ms:.2f}")
                     for stage, ms in cpu_ms.items())


def run_bench(*, images: int, workers: int, database_url: str | None, source: Path,
              batch_size: int, inline: bool = False, keep: Path | None = None,
              runtime: str = "onnx", model_path: Path | None = None,
              hand_models: Path | None = None, max_pixels: int | None = None,
              submit_by: SubmitBy = SubmitBy.COMMAND) -> BenchResult:
    from signdigits.serving.artifact import read_model_info, resolve_model_path
    from signdigits.serving.hands.models import check_models, models_dir

    info = read_model_info(resolve_model_path(model_path))
    info.served_file(runtime)  # the runtime and its file are there, before any work
    check_models(models_dir(hand_models))  # and the hand models (HandModelsError)
    base = Path(tempfile.mkdtemp(prefix="signdigits-bench-"))
    folder = keep or base / "images"

    def ceiling(when: str) -> Ceiling:
        with console.status(f"ceiling{when}: read_photo + find + classify in {workers} "
                            "processes forked from this one"):
            return measure_ceiling(files, workers, runtime=runtime, model_path=model_path,
                                   hand_models=hand_models, max_pixels=max_pixels)

    try:
        with console.status(f"making {images:,} image files from {source}"):
            files = build_folder(source, folder, images)
        database_url = database_url or f"sqlite:///{base / 'bench.db'}"
        console.print(f"{images:,} files in {folder}, from {source}; {os.cpu_count()} CPU "
                      f"threads; {workers} worker processes; database "
                      f"{database_url.split('@')[-1]}; messages carry "
                      + ("the image bytes (--inline)" if inline else "paths")
                      + f"; model {info.version} run by {runtime}; submitted by "
                      + ("POST /api/jobs to a running `signdigits serve`"
                         if submit_by is SubmitBy.HTTP else "a fresh `signdigits submit`"))
        # Measured before and after end to end: a shared machine's speed drifts by more
        # than the differences this bench is for, and the two together bracket the run.
        before = ceiling("")
        with console.status("end to end: submit until every row is stored"):
            e2e = measure_end_to_end(folder, count=images, workers=workers,
                                     database_url=database_url, batch_size=batch_size,
                                     inline=inline, submit_by=submit_by)
        t = e2e.timeline
        console.print(
            f"end to end: {e2e.images_per_s:,.1f} images/s; seconds after submit started: "
            f"job recorded {t.job_recorded:.2f}, first result {t.first_result:.2f}, producer "
            f"done {t.producer_done:.2f}, last result {t.last_result:.2f}, "
            f"seen stored {t.all_stored:.2f}"
        )
        console.print(e2e.cpu.describe())
        console.print(describe_tasks(e2e.task_seconds, process_seconds=workers * t.all_stored))
        after = ceiling(", again")
        result = BenchResult(images, workers, before + after, e2e, runtime=runtime)
        console.print(f"ceiling: {result.ceiling.images_per_s:,.1f} images/s ("
                      f"{before.images_per_s:,.1f} before and {after.images_per_s:,.1f} after "
                      f"end to end); a hand found in {before.with_hand:,} of {images:,} photos")
        cores = os.cpu_count() or 1
        console.print(f"the pipeline's own CPU (workers, producer, broker): "
                      f"{result.pipeline_cpu_ms_per_image:.2f} ms an image, end to end: at "
                      f"most {result.cpu_bound_images_per_s(cores):,.1f} images/s on {cores} "
                      "cores with nothing else running (a database server's CPU not counted)")
        console.print("CPU-ms per image, end to end: "
                      + describe_stages(result.end_to_end_cpu_ms()) + "; ceiling: "
                      + describe_stages(dict(result.ceiling.cpu_ms_per_image())))
        return result
    finally:
        shutil.rmtree(base, ignore_errors=True)
