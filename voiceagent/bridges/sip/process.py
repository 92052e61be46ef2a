"""One SIP media process: pjsua2 endpoints + agent engine + call log + local control endpoint.

What ``voiceagent sip-media`` runs (docs/sip.md has the interface the SIP edge relies on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from typing import Literal

import numpy as np
import uvicorn

from voiceagent.bridges.sip.group import SipEndpointGroup
from voiceagent.bridges.sip.options import SipMediaOptions
from voiceagent.bridges.sip.trunks import load_trunks
from voiceagent.calllog import open_call_log
from voiceagent.config import Settings
from voiceagent.engines.base import SpeechEngine

__all__ = ["EngineChoice", "media_service", "run", "tone_engine"]

logger = logging.getLogger(__name__)

EngineChoice = Literal["cascade", "tone"]


def tone_engine() -> SpeechEngine:
    """Answers every turn with a 1 s 440 Hz tone: measures the media path without models."""
    from voiceagent.testing import ScriptedEngine, ScriptedReply

    t = np.arange(16000) / 16000
    tone = (6000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return ScriptedEngine([ScriptedReply("(tone)", tone)], user_text="(caller)")


@contextlib.asynccontextmanager
async def media_service(
    settings: Settings,
    options: SipMediaOptions,
    *,
    engine: EngineChoice = "cascade",
    call_log: bool = True,
    endpoints: int = 1,
) -> AsyncIterator[SipEndpointGroup]:
    """``endpoints`` started SIP endpoints (SIP ports from ``options.sip_port``) answering with
    the agent of ``settings``; closed on exit."""
    from voiceagent.agents import builtin_agent_path, load_agent

    agent = load_agent(settings.agent_path or builtin_agent_path())
    extra: dict[str, SpeechEngine] = {}
    if engine == "cascade":
        from voiceagent.engines.cascade import CascadeEngine

        speech: SpeechEngine = await CascadeEngine.load(settings, agent)
        # Numbers routed to other agents (sip_trunks[*].numbers -> sip_agents) get engines of their own.
        for name, path in settings.sip_agents.items():
            extra[name] = await CascadeEngine.load(settings, load_agent(path))
    else:
        speech = tone_engine()
    try:
        async with open_call_log(settings, enabled=call_log) as writer:
            service = SipEndpointGroup(
                speech,
                settings,
                options,
                endpoints=endpoints,
                barge_in=agent.barge_in,
                call_log=writer,
                trunks=load_trunks(settings),
                agent_engines=extra,
            )
            await service.start()
            try:
                yield service
            finally:
                await service.aclose()
    finally:
        for other in extra.values():
            await other.aclose()
        await speech.aclose()


def run(
    settings: Settings,
    *,
    sip_port: int | None = None,
    rtp_ports: tuple[int, int] | None = None,
    max_calls: int | None = None,
    allow: tuple[str, ...] = (),
    control_port: int | None = None,
    engine: EngineChoice = "cascade",
    call_log: bool = True,
    endpoints: int | None = None,
) -> None:
    """Serve SIP calls until SIGTERM or SIGINT on ``endpoints`` SIP endpoints (default
    ``sip_endpoints``), SIP ports ``sip_port`` and up."""
    options = SipMediaOptions.from_settings(
        settings, sip_port=sip_port, rtp_ports=rtp_ports, max_calls=max_calls, allow=allow
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        count = endpoints or settings.sip_endpoints
        async with media_service(
            settings, options, engine=engine, call_log=call_log, endpoints=count
        ) as service:
            ports = ",".join(str(port) for port in service.sip_ports)
            print(f"sip-media ready sip={options.bind_host}:{ports}", flush=True)
            server: uvicorn.Server | None = None
            serving: asyncio.Task[None] | None = None
            if control_port is not None:
                from voiceagent.bridges.sip.control import control_app

                config = uvicorn.Config(
                    control_app(service), host="127.0.0.1", port=control_port, log_config=None, lifespan="off"
                )
                server = uvicorn.Server(config)
                serving = asyncio.create_task(server.serve(), name="sip-control")
            try:
                await stop.wait()
            finally:
                if server is not None and serving is not None:
                    server.should_exit = True
                    await serving

    asyncio.run(main())
