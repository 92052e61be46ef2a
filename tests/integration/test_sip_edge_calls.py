"""Calls through the real Kamailio edge to SIPp back-ends: spreading, failover, admission, dialogs."""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from voiceagent.bridges.sip.edge import EdgeConfig, SipEdge

from .ports import free_port_block
from .sip_edge_support import (
    SippUas,
    UdpBackend,
    free_port,
    run_uac,
    send_raw,
    write_scenarios,
)

pytestmark = pytest.mark.skipif(
    shutil.which("kamailio") is None or shutil.which("sipp") is None, reason="needs kamailio and sipp"
)


@pytest.fixture
def scenarios(tmp_path: Path) -> tuple[Path, Path]:
    return write_scenarios(tmp_path, pause_ms=200)


@pytest.fixture
def backends(tmp_path: Path, scenarios: tuple[Path, Path]) -> Iterator[list[SippUas]]:
    started = [
        SippUas(tmp_path, free_port(), free_port_block(4, even=True)).start(scenarios[0]) for _ in range(2)
    ]
    yield started
    for uas in started:
        uas.stop()


@pytest_asyncio.fixture
async def edge(backends: list[SippUas]) -> AsyncIterator[SipEdge]:
    config = EdgeConfig(port=free_port(), media=tuple(b.address for b in backends), max_calls=50)
    async with SipEdge(config, health_interval_s=1.0) as running:
        yield running


async def _calls(tmp_path: Path, scenario: Path, port: int, calls: int, **kwargs: object) -> object:
    return await asyncio.to_thread(run_uac, tmp_path, scenario, port, calls=calls, **kwargs)  # type: ignore[arg-type]


async def test_calls_are_spread_over_both_backends_and_dialogs_stay_on_the_edge(
    tmp_path: Path, scenarios: tuple[Path, Path], backends: list[SippUas], edge: SipEdge
) -> None:
    result = await asyncio.to_thread(
        run_uac, tmp_path, scenarios[1], edge.config.port, calls=10, rate_per_s=20
    )
    assert (result.successful, result.failed) == (10, 0), result.output
    invites = [b.received("INVITE") for b in backends]
    assert invites == [5, 5]  # round robin
    # ACK and BYE came along the Record-Route through the edge, not straight from the caller.
    assert [b.received("BYE") for b in backends] == [5, 5]
    log = backends[0].message_log.read_text(errors="replace")
    assert f"Record-Route: <sip:127.0.0.1:{edge.config.port};lr" in log
    # The SDP is relayed untouched, so RTP goes caller <-> back-end directly.
    assert "o=caller 1 1 IN IP4 127.0.0.1" in log
    assert "c=IN IP4 127.0.0.1" in log


async def test_a_caller_over_tcp_reaches_udp_backends(
    tmp_path: Path, scenarios: tuple[Path, Path], backends: list[SippUas], edge: SipEdge
) -> None:
    result = await asyncio.to_thread(
        run_uac, tmp_path, scenarios[1], edge.config.port, calls=2, rate_per_s=10, extra=("-t", "t1")
    )
    assert (result.successful, result.failed) == (2, 0), result.output
    assert [b.received("BYE") for b in backends] == [1, 1]


async def test_a_dead_backend_is_routed_around_and_used_again_when_back(
    tmp_path: Path, scenarios: tuple[Path, Path], backends: list[SippUas], edge: SipEdge
) -> None:
    backends[1].stop()
    result = await asyncio.to_thread(
        run_uac, tmp_path, scenarios[1], edge.config.port, calls=6, rate_per_s=10
    )
    assert (result.successful, result.failed) == (6, 0), result.output
    assert backends[0].received("INVITE") == 6
    listing = await edge.rpc("dispatcher.list")
    dead = listing.split(f"sip:{backends[1].address}")[1].split("FLAGS:")[1].split()[0]
    assert dead.startswith("I"), listing  # inactive, still probed
    # Back on the same port: the OPTIONS probes find it and calls reach it again.
    revived = SippUas(tmp_path / "revived", backends[1].port, backends[1].media_port)
    revived.directory.mkdir()
    revived.start(scenarios[0])
    try:
        for _ in range(40):
            listing = await edge.rpc("dispatcher.list")
            if listing.split(f"sip:{backends[1].address}")[1].split("FLAGS:")[1].split()[0].startswith("A"):
                break
            await asyncio.sleep(0.25)
        result = await asyncio.to_thread(
            run_uac, tmp_path, scenarios[1], edge.config.port, calls=4, rate_per_s=10
        )
        assert (result.successful, result.failed) == (4, 0), result.output
        assert revived.received("INVITE") == 2
    finally:
        revived.stop()


async def test_calls_past_the_limit_get_503_with_a_reason(tmp_path: Path, backends: list[SippUas]) -> None:
    _, long_calls = write_scenarios(tmp_path, pause_ms=3000)
    config = EdgeConfig(port=free_port(), media=tuple(b.address for b in backends), max_calls=2)
    async with SipEdge(config) as edge:
        log = tmp_path / "uac-messages.log"
        result = await asyncio.to_thread(
            run_uac, tmp_path, long_calls, edge.config.port, calls=3, rate_per_s=50,
            extra=("-trace_msg", "-message_file", str(log)),
        )  # fmt: skip
        assert (result.successful, result.failed) == (2, 1), result.output
        text = log.read_text(errors="replace")
        assert "SIP/2.0 503 Service Unavailable" in text
        assert 'Reason: SIP;cause=503;text="voiceagent at capacity"' in text
        # Every admitted call was counted out again when it ended (no leak in the live-call count).
        live = await edge.rpc("htable.get", "calls", "live")
        assert re.search(r"value:\s*0\b", live), live


async def test_no_backend_alive_gives_503_and_unknown_dialogs_481(tmp_path: Path) -> None:
    config = EdgeConfig(port=free_port(), media=(f"127.0.0.1:{free_port()}",), backend_timeout_ms=500)
    async with SipEdge(config) as edge:
        port = edge.config.port
        call_id = uuid.uuid4().hex
        bye = (
            f"BYE sip:agent@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK{call_id}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>;tag=2\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        reply = await asyncio.to_thread(send_raw, port, bye)
        assert reply is not None
        assert reply.startswith(b"SIP/2.0 481 ")
        _, scenario = write_scenarios(tmp_path)
        log = tmp_path / "uac-dead.log"
        result = await asyncio.to_thread(
            run_uac, tmp_path, scenario, port, calls=1, extra=("-trace_msg", "-message_file", str(log))
        )
        assert result.failed == 1
        assert "SIP/2.0 503 Service Unavailable" in log.read_text(errors="replace")


async def test_hostile_sdp_never_reaches_the_backend(tmp_path: Path) -> None:
    with UdpBackend() as backend:
        config = EdgeConfig(port=free_port(), media=(backend.address,))
        async with SipEdge(config) as edge:
            port = edge.config.port
            cases = [
                ("127.0.0.1", b"SIP/2.0 503 "),  # fine: reaches the back-end, busy (486 → 503 when all are)
                ("%n" * 130, b"SIP/2.0 488 "),  # PROTOS 3631-style: aborts pjsip
                ("1" * 300, b"SIP/2.0 488 "),
                ("evil.example.com", b"SIP/2.0 488 "),  # would make pjsip resolve a name
            ]
            for address, expected in cases:
                call_id = uuid.uuid4().hex
                body = (
                    f"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {address}\r\n"
                    "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
                )
                invite = (
                    f"INVITE sip:agent@127.0.0.1:{port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\n"
                    f"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
                    f"CSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:9>\r\nContent-Type: application/sdp\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n{body}"
                ).encode()
                reply = await asyncio.to_thread(send_raw, port, invite, timeout_s=3.0)
                assert reply is not None, address
                assert reply.startswith(expected), (address, reply)
        assert len(backend.invites) == 1


async def test_a_full_media_process_is_skipped_without_being_marked_down() -> None:
    """503/486 mean "full", not "dead": the next one is tried and both stay in the rotation."""
    with UdpBackend(b"503 Service Unavailable") as full, UdpBackend(b"486 Busy Here") as busy:
        config = EdgeConfig(port=free_port(), media=(full.address, busy.address))
        async with SipEdge(config) as edge:
            port = edge.config.port
            call_id = uuid.uuid4().hex
            invite = (
                f"INVITE sip:agent@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\n"
                f"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
                "CSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            reply = await asyncio.to_thread(send_raw, port, invite, timeout_s=3.0)
            assert reply is not None
            assert reply.startswith(b"SIP/2.0 503 ")
            assert b'text="every media process is full"' in reply
            assert (len(full.invites), len(busy.invites)) == (1, 1)
            listing = await edge.rpc("dispatcher.list")
            assert "FLAGS: I" not in listing, listing
