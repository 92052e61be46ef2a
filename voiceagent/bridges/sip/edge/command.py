"""``voiceagent sip-edge``: run the supervised Kamailio edge in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from voiceagent.bridges.sip.edge.edge_config import EdgeConfig
from voiceagent.bridges.sip.edge.supervisor import SipEdge

__all__ = ["run_edge"]

logger = logging.getLogger(__name__)


async def run_edge(
    config: EdgeConfig,
    runtime_dir: Path | None = None,
    *,
    stop: asyncio.Event | None = None,
    on_ready: object = None,
) -> int:
    """Run the edge until ``stop`` is set (or SIGINT/SIGTERM); returns how often it was restarted."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with SipEdge(config, runtime_dir) as edge:
            media = ", ".join(config.media) or "none yet"
            message = (
                f"SIP edge on {config.host}:{config.port} (udp, tcp"
                f"{f', tls :{config.tls_port}' if config.tls else ''}) -> media processes: {media};"
                f" config in {edge.runtime_dir}"
            )
            logger.info("%s", message)
            if callable(on_ready):
                on_ready(message)
            await stop.wait()
            return edge.restarts
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
