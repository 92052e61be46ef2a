"""The SIP audio port's per-frame helpers: the one-memcpy frame copy and the per-tick loop waker."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from voiceagent.bridges.sip.waker import LoopWaker

pj = pytest.importorskip("pjsua2")


def _frame(payload: bytes, size: int | None = None) -> object:
    frame = pj.MediaFrame()
    frame.buf = pj.ByteVector(payload)
    frame.size = len(payload) if size is None else size
    return frame


def test_frame_bytes_is_the_frames_payload() -> None:
    from voiceagent.bridges.sip import port

    payload = bytes((i * 7 + 3) % 256 for i in range(port.FRAME_BYTES))
    assert port._FAST_COPY, "the std::vector layout check failed: every frame takes the slow copy"
    frame = _frame(payload)  # held: .buf is a view into it
    assert port.frame_bytes(frame) == payload
    assert port._vector_bytes_slow(frame.buf, len(payload)) == payload


def test_frame_bytes_never_reads_past_the_vector() -> None:
    from voiceagent.bridges.sip import port

    short = bytes(range(100))
    # A frame claiming more bytes than its vector holds: the fast path refuses, SWIG's copy decides.
    frame = _frame(short)
    assert port._vector_bytes_fast(frame.buf, 200) is None
    partial = _frame(short, size=50)
    assert port.frame_bytes(partial) == short[:50]


def _port(frame_ms: int) -> object:
    from voiceagent.bridges.sip.binding import binding

    port = binding(0).AudioPort(LoopWaker(asyncio.new_event_loop()), frame_ms=frame_ms)
    # Never registered with a bridge and no Endpoint here: its C++ destructor must not run.
    port.thisown = False
    return port


@pytest.mark.parametrize("frame_ms", [20, 40])
def test_a_port_hands_the_media_layer_20_ms_frames_whatever_its_tick(frame_ms: int) -> None:
    from voiceagent.bridges.sip.port import FRAME_BYTES

    port = _port(frame_ms)
    per_tick = frame_ms // 20
    caller = bytes((i * 11 + 5) % 256 for i in range(FRAME_BYTES * per_tick))
    short, whole = _frame(caller[:-2]), _frame(caller)
    for frame in (short, whole):
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
    port.onFrameReceived(short)  # a short frame is no tick: ignored
    assert not port.inbound
    port.onFrameReceived(whole)
    assert [len(f) for f in port.inbound] == [FRAME_BYTES] * per_tick
    assert b"".join(port.inbound) == caller
    assert port.received_frames == per_tick
    # Strict RTP muted the call: a whole tick of silence, frame by frame.
    port.inbound.clear()
    port.muted = True
    port.onFrameReceived(whole)
    assert list(port.inbound) == [bytes(FRAME_BYTES)] * per_tick

    # The agent's side: a prepared tick goes out whole; nothing prepared is a tick of silence.
    agent = bytes((i * 3 + 1) % 256 for i in range(FRAME_BYTES * per_tick))
    port.outbound.append(agent)
    out = pj.MediaFrame()
    port.onFrameRequested(out)
    assert (out.type, out.size) == (pj.PJMEDIA_FRAME_TYPE_AUDIO, len(agent))
    from voiceagent.bridges.sip import port as port_module

    assert port_module.frame_bytes(out) == agent
    port.onFrameRequested(out)
    assert port_module.frame_bytes(out) == bytes(len(agent))
    assert port.requested_frames == 2 * per_tick


def test_a_port_tick_must_be_whole_media_frames() -> None:
    from voiceagent.bridges.sip.binding import binding

    with pytest.raises(ValueError, match="multiple of 20"):
        binding(0).AudioPort(LoopWaker(asyncio.new_event_loop()), frame_ms=30)


class _Leg:
    """A call's loop side as the waker sees it: a backlog of caller frames, optionally a VAD."""

    def __init__(self, name: str, log: list[str], backlog: int = 1, vad: object = None, broken: bool = False):
        self.name, self.log, self.backlog, self.vad, self.broken = name, log, backlog, vad, broken
        self.probabilities: list[float] = []
        self.audio: np.ndarray | None = None

    def tick_start(self) -> bool:
        self.log.append(f"start {self.name}")
        if self.broken:
            raise RuntimeError("one call's fault")
        self._stage()
        return self.backlog > 0

    def tick_next(self) -> bool:
        self.log.append(f"next {self.name}")
        if self.vad is not None:
            self.probabilities.extend(self.vad.collect())  # type: ignore[attr-defined]
        self.backlog -= 1
        self._stage()
        return self.backlog > 0

    def _stage(self) -> None:
        if self.vad is not None and self.audio is not None and self.backlog > 0:
            self.vad.feed(self.audio[:512])  # type: ignore[attr-defined]
            self.audio = self.audio[512:]


async def test_waker_ticks_every_call_once_per_wake_from_another_thread() -> None:
    waker = LoopWaker(asyncio.get_running_loop())
    log: list[str] = []
    legs = [_Leg(str(n), log) for n in range(3)]

    def clock_tick() -> None:  # the media clock thread: three ports ask in the same tick
        for leg in legs:
            waker.wake(leg)

    thread = threading.Thread(target=clock_tick)
    thread.start()
    thread.join()
    for _ in range(5):
        await asyncio.sleep(0)
    # Every call stages its frame before any finishes it: the VAD windows are scored in between.
    assert log == ["start 0", "start 1", "start 2", "next 0", "next 1", "next 2"]
    assert waker.wakeups == 1  # one loop wake-up for the tick, not one per port


async def test_waker_drains_each_calls_backlog() -> None:
    waker = LoopWaker(asyncio.get_running_loop())
    log: list[str] = []
    for leg in (_Leg("a", log, backlog=2), _Leg("b", log, backlog=0), _Leg("c", log, backlog=1)):
        waker.wake(leg)
    await asyncio.sleep(0)
    assert log == ["start a", "start b", "start c", "next a", "next c", "next a"]


async def test_waker_keeps_going_past_a_failing_call(caplog: pytest.LogCaptureFixture) -> None:
    waker = LoopWaker(asyncio.get_running_loop())
    log: list[str] = []
    waker.wake(_Leg("broken", log, broken=True))
    waker.wake(_Leg("next call", log))
    await asyncio.sleep(0)
    assert log == ["start broken", "start next call", "next next call"]
    assert "media tick failed" in caplog.text


async def test_waker_scores_the_calls_vad_windows_in_one_batch() -> None:
    from voiceagent.audio import SileroVad

    rng = np.random.default_rng(3)
    audio = [(rng.standard_normal(512 * 4) * 3000).astype(np.int16) for _ in range(3)]
    alone = [SileroVad.packaged().process(a) for a in audio]
    waker = LoopWaker(asyncio.get_running_loop())
    legs = [_Leg(str(n), [], backlog=4, vad=SileroVad.packaged()) for n in range(3)]
    for leg, a in zip(legs, audio, strict=True):
        leg.audio = a
        waker.wake(leg)
    await asyncio.sleep(0)
    assert waker.batched_windows == 12  # three calls, four windows each
    for leg, want in zip(legs, alone, strict=True):
        assert leg.probabilities == pytest.approx(want, abs=1e-4)


def test_waker_on_a_closed_loop_stops_quietly() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    waker = LoopWaker(loop)
    waker.wake(_Leg("late", []))
    assert waker.closed
    waker.wake(_Leg("later", []))  # no second attempt, no exception


def test_agent_frames_are_written_whole_and_each_frame_keeps_its_own_copy() -> None:
    # Not through a CallAudioPort: making one outside a running Endpoint calls into pjlib.
    from voiceagent.bridges.sip import port

    writer = port.AgentFrameWriter()
    assert writer.fast, "the agent's frames take the slow ByteVector path"
    first = bytes((i * 5 + 1) % 256 for i in range(port.FRAME_BYTES))
    second = bytes((i * 11 + 2) % 256 for i in range(port.FRAME_BYTES))
    frames = [pj.MediaFrame() for _ in range(2)]
    writer.write(frames[0], first)
    writer.write(frames[1], second)
    # Refilling the writer's vector for the next frame changes no earlier frame.
    assert [port.frame_bytes(f) for f in frames] == [first, second]
    assert all(f.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and f.size == port.FRAME_BYTES for f in frames)
    odd = bytes(range(10))  # not a frame's size: still handed over whole, by the slow path
    frame = pj.MediaFrame()
    writer.write(frame, odd)
    assert port.frame_bytes(frame) == odd


async def test_a_paced_waker_ticks_calls_of_unrelated_clocks_in_one_run() -> None:
    """Paced (several endpoints in a process): ports of different clocks only queue their calls;
    the loop's own timer runs them all together, once per pace, and stops when no call asks."""
    waker = LoopWaker(asyncio.get_running_loop(), pace_s=0.02)
    log: list[str] = []
    legs = [_Leg(str(n), log) for n in range(3)]

    def clocks() -> None:  # three endpoints' clock threads, a few ms apart
        for leg in legs:
            waker.wake(leg)
            time.sleep(0.004)

    thread = threading.Thread(target=clocks)
    thread.start()
    thread.join()
    await asyncio.sleep(0.05)
    assert log[:6] == ["start 0", "start 1", "start 2", "next 0", "next 1", "next 2"]
    assert len(log) == 6  # nothing ticked twice
    runs = waker.wakeups
    await asyncio.sleep(0.2)  # nobody asks any more: five empty runs, then the timer stops
    assert waker.wakeups - runs <= 5
    stopped = waker.wakeups
    await asyncio.sleep(0.1)
    assert waker.wakeups == stopped
    waker.wake(legs[0])  # a call asks again: the timer restarts
    await asyncio.sleep(0.01)
    assert log[6:] == ["start 0"]
    waker.close()
    runs = waker.wakeups
    await asyncio.sleep(0.1)
    assert waker.wakeups == runs  # closed: no timer left behind


def test_a_paced_waker_refuses_a_pace_outside_1_to_100_ms() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="1-100 ms"):
            LoopWaker(loop, pace_s=0.5)
    finally:
        loop.close()
