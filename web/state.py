"""What every request handler shares: settings, database sessions, the Celery client.

Built once per application by :func:`web.app.create_app`; handlers are given its parts
by the dependencies of :mod:`web.deps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from signdigits.config.settings import Settings


@dataclass
class WebState:
    settings: Settings
    sessions: sessionmaker[Session]
    celery: Celery
    # Predictions waiting for a worker's answer now: counted on the event loop's thread,
    # so no lock (web.routes.predict bounds it by SIGNDIGITS_PREDICT_MAX_WAITING).
    predictions_waiting: int = field(default=0)

    @cached_property
    def replies(self):
        """An asyncio Redis client on the broker, where workers push predictions' answers.

        Asyncio, so a prediction waiting for its answer holds a connection, not one of
        the 40 threads every synchronous route shares: 45 waiting ones had made /healthz
        wait 27.5 s. Made on first use, inside the server's event loop, which its
        connections then belong to.
        """
        import redis.asyncio

        # A read must outlast the longest BLPOP (redis-py's default gives up after 5 s).
        return redis.asyncio.Redis.from_url(
            self.settings.broker_url or "redis://127.0.0.1:6379/0",
            socket_timeout=self.settings.predict_timeout + 10, socket_connect_timeout=5)
