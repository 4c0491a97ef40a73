"""A benchmark's figures as ``name=value`` lines: what people read and scripts parse."""

from __future__ import annotations

import os

from signdigits.bench.end_to_end import BenchResult
from signdigits.bench.web import WebBenchResult


def _figure(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def bench_lines(result: BenchResult, *, submitted_by: str) -> list[str]:
    e2e = result.end_to_end
    return [
        f"images={result.images} cpu_threads={os.cpu_count()}",
        f"runtime={result.runtime}",
        f"submitted_by={submitted_by}",
        f"ceiling_images_per_s={result.ceiling:.1f}",
        f"ceiling_tensorflow_images_per_s={_figure(result.ceiling_tensorflow)}",
        f"original_images_per_s={_figure(result.original)}",
        f"end_to_end_images_per_s={e2e.images_per_s:.1f}",
        f"multiply_adds_per_image={result.multiply_adds or 'n/a'}",
        f"ceiling_gflops={_figure(result.gflops(result.ceiling), 2)}",
        f"end_to_end_gflops={_figure(result.gflops(e2e.images_per_s), 2)}",
        f"producer_seconds={_figure(e2e.producer_seconds, 2)}",
        f"producer_peak_mb={_figure(e2e.producer_peak_mb, 0)}",
        "worker_peak_mb=" + ",".join(f"{m:.0f}" for m in e2e.worker_peak_mb),
        "cpu_seconds=" + ",".join(f"{k}:{v:.2f}" for k, v in e2e.cpu.as_dict().items()),
        "task_seconds=" + ",".join(f"{k}:{v:.2f}" for k, v in e2e.task_seconds.items()),
        f"tasks={e2e.tasks}",
        f"ratio_to_original={_figure(result.ratio_to_original)}",
        f"ratio_to_tensorflow_ceiling={_figure(result.ratio_to_tensorflow_ceiling, 2)}",
        f"ratio_to_ceiling={result.ratio_to_ceiling:.2f}",
    ]


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
