"""One loop wake-up per media clock tick for every call of the process.

pjsip's conference bridge asks each call's audio port for a frame in the same 20 ms tick, on its
clock thread. Waking the event loop once per port costs a self-pipe write and a loop iteration
each; with a media process full of calls those were a visible share of its CPU. The waker
collects the ports that asked during a tick and wakes the loop once; the loop then runs each
port's callback in the order they asked.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable

__all__ = ["LoopWaker"]

logger = logging.getLogger(__name__)


class LoopWaker:
    """Thread-safe: :meth:`wake` runs on any thread; the callbacks run on ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: deque[Callable[[], None]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self.wakeups = 0  # loop callbacks scheduled (at most one per tick when the loop keeps up)
        self.closed = False

    def wake(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop soon (media clock thread)."""
        if self.closed:
            return
        self._due.append(callback)
        with self._lock:
            if self._scheduled:
                return  # the pending run drains this callback too
            self._scheduled = True
        self.wakeups += 1
        try:
            self._loop.call_soon_threadsafe(self._run)
        except RuntimeError:  # the loop is closed: the process is going down
            self.closed = True

    def _run(self) -> None:
        # The flag drops before the drain: a callback queued meanwhile is run now or by the
        # run it schedules, never left behind.
        with self._lock:
            self._scheduled = False
        due = self._due
        while due:
            callback = due.popleft()
            try:
                callback()
            except Exception:  # one call's fault must not stop the other calls' clocks
                logger.exception("media tick failed")
