"""What every request handler shares: settings, database sessions, the Celery client.

Built once per application by :func:`web.app.create_app`; handlers are given its parts
by the dependencies of :mod:`web.deps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from signdigits.config.settings import Settings


@dataclass
class WebState:
    settings: Settings
    sessions: sessionmaker[Session]
    celery: Celery

    @cached_property
    def replies(self):
        """A Redis client on the broker, where workers push predictions' answers."""
        import redis

        # A read must outlast the longest BLPOP (redis-py's default gives up after 5 s).
        return redis.Redis.from_url(self.settings.broker_url or "redis://127.0.0.1:6379/0",
                                    socket_timeout=self.settings.predict_timeout + 10,
                                    socket_connect_timeout=5)
