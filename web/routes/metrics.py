"""``GET /metrics``: Prometheus' text format (docs/metrics.md); behind the web's own
credentials, or SIGNDIGITS_METRICS_TOKEN as a bearer token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from signdigits.web.deps import StateDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, state: StateDep) -> Response:
    from signdigits.web.metrics import WebMetrics

    found = getattr(request.app.state, "metrics", None)
    if found is None:
        found = request.app.state.metrics = WebMetrics(state)
    body = await run_in_threadpool(found.scrape)  # database and broker reads
    return Response(body, media_type=CONTENT_TYPE_LATEST)
