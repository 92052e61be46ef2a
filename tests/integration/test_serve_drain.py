"""`voiceagent serve` as an orchestrator stops it: SIGTERM drains, the live call goes on, nothing lost.

A real server process (the packaged models, SQLite call log) and a real aiortc caller on loopback.
"""

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from voiceagent.bridges.webrtc.client import LoopbackCaller

from .corpus import question, read_pcm

pytestmark = [pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, process: subprocess.Popen[bytes], base_url: str, database: Path) -> None:
        self.process, self.base_url, self.database = process, base_url, database

    def exited_within(self, seconds: float) -> int | None:
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None


def _start(tmp_path: Path, drain_timeout_s: float) -> Served:
    port = _free_port()
    database = tmp_path / "calls.db"
    env = {
        **os.environ,
        "VOICEAGENT_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "VOICEAGENT_SPOOL_DIR": str(tmp_path / "spool"),
        "VOICEAGENT_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "VOICEAGENT_DRAIN_TIMEOUT_S": str(drain_timeout_s),
    }
    with open(tmp_path / "serve.log", "wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "voiceagent", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return Served(process, base_url, database)
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "serve did not come up in 90 s"
        time.sleep(0.3)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = _start(tmp_path, drain_timeout_s=60)
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def served_short_drain(tmp_path: Path) -> Iterator[Served]:
    server = _start(tmp_path, drain_timeout_s=2)
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


async def _call(http: httpx.AsyncClient) -> LoopbackCaller:
    caller = LoopbackCaller(read_pcm(question("opening-hours").path()))

    async def signal_(offer: dict[str, str]) -> dict[str, str]:
        response = await http.post("/v1/webrtc/offer", json=offer)
        assert response.status_code == 201, response.text
        return dict(response.json())

    await caller.connect(signal_)
    deadline = time.monotonic() + 20
    while not caller.heard:
        assert time.monotonic() < deadline, "the call never carried audio"
        await asyncio.sleep(0.1)
    return caller


def _call_rows(database: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(database) as db:
        return [(str(r[0]), r[1]) for r in db.execute("SELECT id, end_reason FROM calls")]


async def test_sigterm_drains_then_exits_when_the_last_call_ends(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as http:
        caller = await _call(http)
        try:
            assert (await http.get("/readyz")).status_code == 200
            served.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while (ready := await http.get("/readyz")).status_code != 503:
                assert time.monotonic() < deadline, "readyz never said draining"
                await asyncio.sleep(0.1)
            assert ready.json()["checks"] == {"drain": "draining"}
            # New calls go elsewhere: a clear 503, not a hang or a reset.
            refused = await http.post("/v1/webrtc/offer", json={"sdp": "v=0\r\n", "type": "offer"})
            assert refused.status_code == 503, refused.text
            assert "draining" in refused.text
            # The live call goes on: audio keeps arriving for seconds after SIGTERM.
            frames_before = len(caller.heard)
            await asyncio.sleep(3.0)
            assert len(caller.heard) - frames_before >= 100, "the call stopped carrying audio"
            assert served.process.poll() is None, "serve exited with a call still live"
            assert caller.call_id is not None
            assert (await http.delete(f"/v1/webrtc/calls/{caller.call_id}")).status_code == 204
        finally:
            await caller.aclose()
    rc = await asyncio.to_thread(served.exited_within, 20)
    assert rc == 0, f"serve did not exit cleanly after its last call: {rc}"
    assert _call_rows(served.database) == [(caller.call_id, "hangup")]


async def test_drain_timeout_ends_the_calls_and_keeps_their_log(served_short_drain: Served) -> None:
    served = served_short_drain
    async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as http:
        caller = await _call(http)
        try:
            started = time.monotonic()
            served.process.send_signal(signal.SIGTERM)
            rc = await asyncio.to_thread(served.exited_within, 30)
            waited = time.monotonic() - started
        finally:
            await caller.aclose()
    assert rc == 0
    assert waited >= 1.5, f"exited after {waited:.1f} s, before the 2 s drain timeout"
    # The call was ended by the shutdown, and its row made it to the database before exit.
    assert _call_rows(served.database) == [(caller.call_id, "shutdown")]
