"""The SIP audio port's per-frame helpers: the one-memcpy frame copy and the per-tick loop waker."""

from __future__ import annotations

import asyncio
import threading

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


async def test_waker_runs_every_callback_once_per_wake_from_another_thread() -> None:
    waker = LoopWaker(asyncio.get_running_loop())
    ran: list[int] = []

    def tick() -> None:  # the media clock thread: three ports ask in the same tick
        for n in range(3):
            waker.wake(lambda n=n: ran.append(n))

    thread = threading.Thread(target=tick)
    thread.start()
    thread.join()
    for _ in range(5):
        await asyncio.sleep(0)
    assert ran == [0, 1, 2]
    assert waker.wakeups == 1  # one loop wake-up for the tick, not one per port


async def test_waker_keeps_going_past_a_failing_callback(caplog: pytest.LogCaptureFixture) -> None:
    waker = LoopWaker(asyncio.get_running_loop())
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("one call's fault")

    waker.wake(broken)
    waker.wake(lambda: ran.append("next call"))
    await asyncio.sleep(0)
    assert ran == ["next call"]
    assert "media tick failed" in caplog.text


def test_waker_on_a_closed_loop_stops_quietly() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    waker = LoopWaker(loop)
    waker.wake(lambda: None)
    assert waker.closed
    waker.wake(lambda: None)  # no second attempt, no exception
