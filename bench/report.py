"""A benchmark's figures as ``name=value`` lines: what people read and scripts parse."""

from __future__ import annotations

import os

from signdigits.bench.end_to_end import BenchResult, wall_phases
from signdigits.bench.web import WebBenchResult


def _stages(cpu_ms: dict[str, float | None]) -> str:
    return ",".join(f"{stage}:" + ("n/a" if ms is None else f"{ms:.2f}")
                    for stage, ms in cpu_ms.items())


def bench_lines(result: BenchResult, *, submitted_by: str, source: str = "") -> list[str]:
    """The figures, one ``name=value`` a line; the last is ``ratio_to_ceiling=``.

    ``cpu_ms_per_image`` is end to end (from the tasks' results), ``ceiling_cpu_ms_per_image``
    the ceiling's; both by stage: decode, palms (the palm detector), landmarks, classify.
    """
    e2e = result.end_to_end
    hands_per_image = result.ceiling.hands / result.ceiling.images
    return [
        f"images={result.images} cpu_threads={os.cpu_count()} workers={result.workers}",
        f"source={source}",
        f"runtime={result.runtime}",
        f"submitted_by={submitted_by}",
        f"end_to_end_images_per_s={e2e.images_per_s:.1f}",
        f"ceiling_images_per_s={result.ceiling.images_per_s:.1f}",
        f"cpu_ms_per_image={_stages(result.end_to_end_cpu_ms())}",
        f"ceiling_cpu_ms_per_image={_stages(dict(result.ceiling.cpu_ms_per_image()))}",
        f"with_hand={result.ceiling.with_hand / result.ceiling.images:.3f}",
        # Hands per photo as the ceiling read them: a group photo's hands/s, end to end.
        f"end_to_end_hands_per_s={e2e.images_per_s * hands_per_image:.1f}",
        f"ceiling_hands_per_s={result.ceiling.images_per_s * hands_per_image:.1f}",
        f"producer_seconds={_figure(e2e.producer_seconds, 2)}",
        f"producer_peak_mb={_figure(e2e.producer_peak_mb, 0)}",
        "worker_peak_mb=" + ",".join(f"{m:.0f}" for m in e2e.worker_peak_mb),
        "cpu_seconds=" + ",".join(f"{k}:{v:.2f}" for k, v in e2e.cpu.as_dict().items()),
        "task_seconds=" + ",".join(f"{k}:{v:.2f}"
                                   for k, v in wall_phases(e2e.task_seconds).items()),
        f"tasks={e2e.tasks}",
        # The workers', producer's and broker's CPU per image, and the images/s it allows
        # on this machine's cores left to the pipeline: other users of a shared machine
        # move it far less than the images/s (only through the caches they share).
        f"pipeline_cpu_ms_per_image={result.pipeline_cpu_ms_per_image:.2f}",
        f"cpu_bound_images_per_s={result.cpu_bound_images_per_s(os.cpu_count() or 1):.1f}",
        f"ratio_to_ceiling={result.ratio_to_ceiling:.2f}",
    ]


def _figure(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def web_bench_lines(result: WebBenchResult) -> list[str]:
    return [
        f"rows={result.rows} busy_job_images={result.busy_job_images}",
        f"images_first_page_ms={result.first_page_ms:.1f}",
        f"images_page_500_ms={result.page_500_ms:.1f}",
        f"thumbnail_ms={result.thumbnail_ms:.1f}",
        f"predict_idle_ms={result.predict_idle_ms:.1f}",
        f"predict_during_job_ms={result.predict_busy_ms:.1f} "
        f"(max {result.predict_busy_max_ms:.1f})",
    ]
