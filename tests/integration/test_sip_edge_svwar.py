"""sipvicious ``svwar`` against the edge: no extension may be reported as existing."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess

import pytest

from voiceagent.bridges.sip.edge import EdgeConfig, SipEdge

from .sip_edge_support import UdpBackend, free_port

SVWAR = shutil.which("svwar") or shutil.which("sipvicious_svwar")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(SVWAR is None or shutil.which("kamailio") is None, reason="needs svwar and kamailio"),
]

# svwar prints found extensions as table rows: "| 100       | reqauth        |".
_FOUND_ROW = re.compile(r"^\|\s*\d+\s*\|\s*\w+", re.MULTILINE)


def _svwar(port: int, method: str) -> str:
    assert SVWAR is not None
    done = subprocess.run(
        [SVWAR, "-e", "100-130,1000,2000", "-m", method, "--force", "-P", str(free_port()),
         "-p", str(port), "127.0.0.1"],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    ("scanner_filter", "methods"),
    [(True, ("REGISTER",)), (False, ("REGISTER", "INVITE", "OPTIONS"))],
    ids=["scanner-dropped", "filter-off-uniform-answers"],
)
async def test_svwar_finds_no_extension(scanner_filter: bool, methods: tuple[str, ...]) -> None:
    """With its User-Agent dropped it hears nothing; without that filter every user gets the same answer."""
    extra: dict[str, object] = {} if scanner_filter else {"scanner_agents": (), "pike_requests": 100_000}
    with UdpBackend() as backend:
        config = EdgeConfig(port=free_port(), media=(backend.address,), **extra)  # type: ignore[arg-type]
        async with SipEdge(config) as edge:
            for method in methods:
                output = await asyncio.to_thread(_svwar, edge.config.port, method)
                assert not _FOUND_ROW.search(output), output
                assert "found nothing" in output, output
            assert await edge.ping()
            stats = await edge.stats()
    assert stats["core:rcv_requests_register"] >= 1  # svwar did reach the edge
    if scanner_filter:
        assert stats["sl:403_replies"] == 0  # ... and heard nothing back
    else:
        assert stats["sl:403_replies"] >= 1  # the same 403 for every user: svwar gives up
