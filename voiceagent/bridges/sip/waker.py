"""One loop wake-up per media clock tick for every call of the process, and one VAD model call.

pjsip's conference bridge asks each call's audio port for a frame in the same 20 ms tick, on its
clock thread. Waking the event loop once per port costs a self-pipe write and a loop iteration
each; with a media process full of calls those were a visible share of its CPU. The waker
collects the calls whose ports asked during a tick and wakes the loop once.

On the loop it then runs the calls' ticks side by side, in steps: every call hands out its next
agent frame and stages its next caller frame (echo guard, VAD input), the VAD windows those
completed are scored in one batched model call (:func:`voiceagent.audio.score_windows`, cheaper
per window than one call each), and every call finishes its frame (turn-taking, barge-in). A
call with a backlog of caller frames repeats the last two steps until it has none.

Paced (``pace_s``, for a process of several SIP endpoints): each endpoint is a pjsua2 copy with a
clock thread of its own (binding.py), and those clocks tick at unrelated phases, so waking the
loop on every port's request would run the calls in as many small groups as there are
endpoints, each started cold. Paced, the ports only queue their calls, and the loop runs them all
on its own timer, once per ``pace_s``, while any call is queued; a caller frame then waits up to
one tick longer (10 ms on average at 20 ms) before the media layer sees it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from voiceagent.audio import SileroVad, score_windows

__all__ = ["LoopWaker", "TickTarget"]

logger = logging.getLogger(__name__)

_NEW_TICK_S = 0.010  # half of a 20 ms tick
# A paced waker stops its timer after this many runs found no call queued.
_IDLE_RUNS = 5


class TickTarget(Protocol):
    """What the waker drives: a call's loop side (``SipCallLeg``)."""

    @property
    def vad(self) -> SileroVad | None: ...

    def tick_start(self) -> bool:
        """Hand out the next agent frame, stage a caller frame; True if one is staged."""
        ...

    def tick_next(self) -> bool:
        """Finish the staged caller frame, stage the next; True if one is staged."""
        ...


class LoopWaker:
    """Thread-safe: :meth:`wake` runs on any thread; the ticks run on ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, pace_s: float | None = None) -> None:
        if pace_s is not None and not 0.001 <= pace_s <= 0.1:
            raise ValueError(f"a paced waker ticks every 1-100 ms, got {pace_s * 1000:.1f} ms")
        self._loop = loop
        self.pace_s = pace_s
        self._timer: asyncio.TimerHandle | None = None
        self._next_run_s = 0.0
        self._idle_runs = 0
        self._due: deque[TickTarget] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self.wakeups = 0  # loop callbacks scheduled (at most one per tick when the loop keeps up)
        self.model_windows = 0  # VAD windows that needed the model
        self.batched_windows = 0  # ...of which scored in batches of two or more
        # Media clock ticks seen (a wake more than half a tick after the previous one starts a
        # new tick; paced: the loop's runs): calls align their VAD windows on it, so that their
        # windows end together.
        self.clock_ticks = 0
        self._last_wake_s = 0.0
        self.closed = False

    def wake(self, target: TickTarget) -> None:
        """Tick ``target`` on the loop soon (media clock thread)."""
        if self.closed:
            return
        if self.pace_s is not None:
            self._due.append(target)
            with self._lock:
                if self._scheduled:
                    return  # the loop's timer runs, and ticks this target on its next run
                self._scheduled = True
            self._call_soon(self._start_pacing)
            return
        now = time.monotonic()
        if now - self._last_wake_s > _NEW_TICK_S:
            self.clock_ticks += 1
        self._last_wake_s = now
        self._due.append(target)
        with self._lock:
            if self._scheduled:
                return  # the pending run ticks this target too
            self._scheduled = True
        self._call_soon(self._run)

    def _call_soon(self, fn: Callable[[], None]) -> None:
        self.wakeups += 1
        try:
            self._loop.call_soon_threadsafe(fn)
        except RuntimeError:  # the loop is closed: the process is going down
            self.closed = True

    def close(self) -> None:
        """No more ticks (the process is stopping); loop thread."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _run(self) -> None:
        # The flag drops before the drain: a target queued meanwhile is ticked now or by the
        # run it schedules, never left behind.
        with self._lock:
            self._scheduled = False
        self._tick_due()

    # ---- paced ---------------------------------------------------------------------------------

    def _start_pacing(self) -> None:
        self._next_run_s = self._loop.time()
        self._idle_runs = 0
        self._paced_run()

    def _paced_run(self) -> None:
        self._timer = None
        if self.closed:
            return
        assert self.pace_s is not None
        self.clock_ticks += 1
        self.wakeups += 1
        self._idle_runs = 0 if self._tick_due() else self._idle_runs + 1
        if self._idle_runs >= _IDLE_RUNS:
            # Nothing queued for a while (no call, or all on hold): stop the timer, so an idle
            # process does not wake 50 times a second; the next queued call starts it again.
            with self._lock:
                if not self._due:
                    self._scheduled = False
                    return
        now = self._loop.time()
        self._next_run_s += self.pace_s
        if self._next_run_s < now - self.pace_s:  # fell more than a tick behind: do not catch up
            self._next_run_s = now
        self._timer = self._loop.call_at(self._next_run_s, self._paced_run)

    # ---- both ----------------------------------------------------------------------------------

    def _tick_due(self) -> bool:
        """Tick every queued target; False if none was queued."""
        due = self._due
        targets: list[TickTarget] = []
        while due:
            targets.append(due.popleft())
        if not targets:
            return False
        staged = [t for t in targets if _guarded(t.tick_start)]
        while staged:
            vads = [vad for vad in (t.vad for t in staged) if vad is not None and vad.needs_model]
            self.model_windows += len(vads)
            if len(vads) > 1:
                try:
                    self.batched_windows += score_windows(vads)
                except Exception:  # each call's own collect() scores its window instead
                    logger.exception("batched VAD failed")
            staged = [t for t in staged if _guarded(t.tick_next)]
        return True


def _guarded(step: Callable[[], bool]) -> bool:
    try:
        return step()
    except Exception:  # one call's fault must not stop the other calls' clocks
        logger.exception("media tick failed")
        return False
