"""The file bridge: plays a WAV as the caller and records what the caller would hear."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from voiceagent.audio import FRAME_MS, FRAME_SAMPLES, Framer
from voiceagent.media.session import CallSession

__all__ = ["FileCallResult", "Line", "run_file_call"]

# (caller frame, outbound frame of the same slot) -> the frame that reaches the media layer
Line = Callable[[npt.NDArray[np.int16], npt.NDArray[np.int16]], npt.NDArray[np.int16]]

# After the caller's audio ends and the agent has finished, keep the line open this long.
_TAIL_MS = 300


@dataclass(frozen=True)
class FileCallResult:
    """What came out of a file call; ``outbound`` is time-aligned with ``inbound``, 16 kHz."""

    inbound: npt.NDArray[np.int16]
    outbound: npt.NDArray[np.int16]
    duration_s: float
    wall_s: float


async def run_file_call(
    session: CallSession,
    caller: npt.NDArray[np.int16],
    *,
    realtime: bool = True,
    max_call_s: float = 600.0,
    line: Line | None = None,
) -> FileCallResult:
    """Feed ``caller`` (16 kHz mono PCM16) frame by frame and pull one outbound frame per inbound one.

    In real-time mode each frame waits for its 20 ms slot. In fast mode the clock only skips ahead
    while nobody waits on the engine: from the end of a caller turn until the engine's answer is
    complete the frames are paced in real time, so the latency we report is the latency a caller
    would hear, while the silences in between cost nothing.

    ``line``, if given, models the phone line: it gets each caller frame and the outbound frame
    of the same slot and returns what actually arrives (with echo, noise, codec...).
    """
    framer = Framer(FRAME_SAMPLES)
    frames = framer.push(caller)
    last = framer.flush()
    if last is not None:
        frames.append(last)
    max_frames = int(max_call_s * 1000 / FRAME_MS)
    tail_frames = _TAIL_MS // FRAME_MS
    silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    started = time.monotonic()
    deadline = started
    idle = 0
    tick = 0
    while tick < max_frames:
        # Slot ``tick`` plays one outbound frame while one inbound frame arrives; the inbound frame
        # is complete only at the end of the slot, so whatever it triggers can be heard from the
        # next slot on. Pulling first keeps that order (and the latency we report) honest.
        outbound = session.pull_outbound()
        in_input = tick < len(frames)
        inbound = frames[tick] if in_input else silence
        session.push_inbound(inbound if line is None else line(inbound, outbound))
        if realtime or session.waiting:
            deadline += FRAME_MS / 1000
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        else:
            await asyncio.sleep(0)  # let the engine's events be applied before the next pull
            deadline = time.monotonic()
        tick += 1
        if session.ended_reason is not None and not session.agent_audio_pending:
            break
        if not in_input:
            idle = idle + 1 if session.finished else 0
            if idle >= tail_frames:
                break
    return FileCallResult(
        inbound=session.recorder.inbound(),
        outbound=session.recorder.outbound(),
        duration_s=tick * FRAME_MS / 1000,
        wall_s=time.monotonic() - started,
    )
