"""How many wrong passwords a client may try: one rule, in memory, per client address.

No more than ``max_failures`` failed logins from one address in any ``window`` seconds;
past that, every request of that address that carries credentials is answered 429 until
the oldest of those failures is ``window`` old. Pure (the clock is an argument), so the
rule is tested without waiting for it.
"""

from __future__ import annotations

import math
from collections import deque

MAX_FAILURES = 10
WINDOW_SECONDS = 60.0
# Addresses remembered at most: a scan from many addresses cannot grow the table for ever.
MAX_CLIENTS = 10_000


class LoginThrottle:
    def __init__(self, *, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS,
                 max_clients: int = MAX_CLIENTS) -> None:
        self.max_failures, self.window, self.max_clients = max_failures, window, max_clients
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str, now: float) -> int:
        """Whole seconds until ``client`` may try credentials again; 0: it may now."""
        failures = self._recent(client, now)
        if len(failures) < self.max_failures:
            return 0
        return max(1, math.ceil(failures[0] + self.window - now))

    def failed(self, client: str, now: float) -> None:
        """Record a wrong password (or token) from ``client``."""
        failures = self._recent(client, now)
        if not failures:
            self._make_room(now)
            self._failures[client] = failures
        failures.append(now)
        while len(failures) > self.max_failures:  # older ones no longer decide anything
            failures.popleft()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.get(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            self._failures.pop(client, None)
        return failures

    def _make_room(self, now: float) -> None:
        if len(self._failures) < self.max_clients:
            return
        for client in list(self._failures):  # the expired ones, then the oldest entered
            self._recent(client, now)
        while len(self._failures) >= self.max_clients:
            del self._failures[next(iter(self._failures))]

    def __len__(self) -> int:
        return len(self._failures)
