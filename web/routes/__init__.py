"""The web's routes, one module per resource; :func:`web.app.create_app` includes them
in the order of :data:`ROUTERS`."""

from __future__ import annotations

from signdigits.web.routes import (
    events,
    health,
    images,
    jobs,
    metrics,
    models,
    pages,
    pictures,
    predict,
    results,
    reviews,
    workers,
)

ROUTERS = [jobs.router, results.router, images.router, pictures.router, predict.router,
           reviews.router, models.router, workers.router, events.router, health.router,
           metrics.router, pages.router]
