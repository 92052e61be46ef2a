"""Every RFC 4475 torture message and every PROTOS c07-sip case against the edge; then a real call.

The back-end is :class:`UdpBackend`, which keeps what the edge let through: no INVITE it receives may
carry the oversized SDP connection addresses that abort the pjsua2 wheel (PROTOS 3631-3714).
Counts are printed (``pytest -s``) and quoted in docs/sip-edge.md.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from voiceagent.bridges.sip.edge import EdgeConfig, SipEdge

from .ports import free_port_block
from .sip_edge_support import (
    SUITES,
    SippUas,
    UdpBackend,
    blast,
    free_port,
    protos_cases,
    rfc4475_messages,
    run_uac,
    write_scenarios,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("kamailio") is None or shutil.which("sipp") is None or not SUITES.exists(),
        reason="needs kamailio, sipp and the suites in /work/shared/testdata/sip",
    ),
]

_CLINE_RE = re.compile(rb"(?m)^c=([^\r\n]*)")
_SANE_CLINE_RE = re.compile(rb"IN (IP4 [0-9.]{7,15}|IP6 [0-9A-Fa-f:.]{2,45})(/\d+){0,2}")


def _delta(before: dict[str, int], after: dict[str, int], *names: str) -> int:
    return sum(after.get(n, 0) - before.get(n, 0) for n in names)


async def test_torture_and_protos_suites_leave_edge_and_backend_answering(tmp_path: Path) -> None:
    uas_scenario, uac_scenario = write_scenarios(tmp_path)
    with UdpBackend() as backend:
        # pike off for this run (every case comes from one address): the point is to parse them all.
        config = EdgeConfig(
            port=free_port(), media=(backend.address,), pike_requests=1_000_000, max_calls=100_000
        )
        async with SipEdge(config, health_interval_s=1.0) as edge:
            pid = edge.pid
            counts: dict[str, dict[str, int]] = {}
            for suite, messages in (("rfc4475", rfc4475_messages()), ("protos", protos_cases())):
                before, reached_before = await edge.stats(), len(backend.invites)
                run = await asyncio.to_thread(blast, messages, edge.config.port)
                await asyncio.sleep(0.5)
                after = await edge.stats()
                counts[suite] = {
                    "sent": run.sent,
                    "replies_to_sender": len(run.replies) + run.unmatched_replies,
                    "replied_4xx": run.count(4),
                    "replied_5xx": run.count(5),
                    "edge_received": _delta(before, after, "core:rcv_requests"),
                    "edge_replied_4xx": _delta(before, after, "sl:4xx_replies", "tmx:4xx_transactions"),
                    "edge_dropped": _delta(before, after, "core:drop_requests", "core:err_requests"),
                    "backend_reached": len(backend.invites) - reached_before,
                }
            print("\nSIP edge suite counts:", counts)
            assert counts["protos"]["sent"] == 4527
            assert counts["rfc4475"]["sent"] == 50
            # Still the same Kamailio (no restart), and it answers.
            assert edge.pid == pid
            assert edge.restarts == 0
            assert await edge.ping()
            # Nothing that aborts pjsip reached the back-end.
            for invite in backend.invites:
                for cline in _CLINE_RE.findall(invite):
                    assert _SANE_CLINE_RE.fullmatch(cline), cline[:100]
            # Most cases get a reply back (4xx from the edge, or the back-end's answer); the rest are
            # dropped silently (unparsable, or no usable Via to answer to).
            assert counts["protos"]["replies_to_sender"] > 3000
            # A valid call afterwards: SIPp caller -> edge -> a SIPp back-end swapped in.
            uas = SippUas(tmp_path, free_port(), free_port_block(4, even=True)).start(uas_scenario)
            try:
                await edge.set_media((uas.address,))
                await asyncio.sleep(0.3)
                result = await asyncio.to_thread(run_uac, tmp_path, uac_scenario, edge.config.port, calls=3)
                assert (result.successful, result.failed) == (3, 0), result.output
                assert uas.received("INVITE") == 3
            finally:
                uas.stop()
