"""Slow down password guessing: a bounded number of failed logins per address and account.

In-process and in memory: each API process counts on its own, which bounds guessing per process
and costs nothing to run; argon2's cost per guess does the rest. A success clears the account's count.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["LoginThrottle"]


class LoginThrottle:
    """At most ``max_failures`` failed logins per (address, email), and ``max_failures * 5`` per
    address, within ``window_s``; ``retry_after_s`` says how long a refused caller waits."""

    def __init__(
        self,
        *,
        max_failures: int = 10,
        window_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after_s(self, address: str, email: str) -> float:
        """0 if this login may be tried now, else the seconds until it may."""
        now = self._clock()
        waits = []
        for key, limit in (
            (f"{address}|{email.lower()}", self.max_failures),
            (address, self.max_failures * 5),
        ):
            times = self._recent(key, now)
            if len(times) >= limit:
                waits.append(times[0] + self.window_s - now)
        return max(waits, default=0.0)

    def failed(self, address: str, email: str) -> None:
        now = self._clock()
        if len(self._failures) >= self._max_keys:  # a flood of distinct keys must not grow memory
            self._failures.clear()
        for key in (f"{address}|{email.lower()}", address):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, address: str, email: str) -> None:
        self._failures.pop(f"{address}|{email.lower()}", None)
