"""``voiceagent sip-media``, ``sip-media-pool`` and ``sip-edge``: the SIP processes."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import click

from voiceagent.commands.common import friendly_errors, settings_from

__all__ = ["sip_edge", "sip_media", "sip_media_pool"]


@click.command("sip-media")
@click.option("--sip-port", type=click.IntRange(1, 65535), default=None, help="SIP port (default: sip_port).")
@click.option("--rtp-port-range", default=None, help="RTP ports A-B (default: sip_rtp_ports).")
@click.option(
    "--max-calls",
    type=click.IntRange(1, 3),
    default=None,
    help="Calls at once per endpoint (default: sip_max_calls).",
)
@click.option(
    "--endpoints", type=click.IntRange(1, 32), default=None,
    help="SIP endpoints (3 calls each) on ports sip-port and up (default: sip_endpoints).",
)  # fmt: skip
@click.option("--allow", multiple=True, help="Also accept SIP from this IP/CIDR (repeatable).")
@click.option("--control-port", type=click.IntRange(1, 65535), default=None, help="Local HTTP control port.")
@click.option("--engine", type=click.Choice(["cascade", "tone"]), default="cascade", show_default=True)
@click.option("--no-log", is_flag=True, help="Do not write calls to the call log.")
@click.pass_context
@friendly_errors
def sip_media(
    ctx: click.Context,
    sip_port: int | None,
    rtp_port_range: str | None,
    max_calls: int | None,
    endpoints: int | None,
    allow: tuple[str, ...],
    control_port: int | None,
    engine: str,
    no_log: bool,
) -> None:
    """One SIP media process (pjsua2, needs voiceagent[sip]): answers and places calls (docs/sip.md)."""
    from voiceagent.bridges.sip.options import parse_port_range
    from voiceagent.bridges.sip.process import run as run_sip_media

    run_sip_media(
        settings_from(ctx),
        sip_port=sip_port,
        rtp_ports=parse_port_range(rtp_port_range) if rtp_port_range else None,
        max_calls=max_calls,
        endpoints=endpoints,
        allow=allow,
        control_port=control_port,
        engine="tone" if engine == "tone" else "cascade",
        call_log=not no_log,
    )


@click.command("sip-media-pool")
@click.option("--processes", type=click.IntRange(1, 64), default=None, help="Default: sip_processes.")
@click.option(
    "--endpoints",
    type=click.IntRange(1, 32),
    default=None,
    help="SIP endpoints per process (default: sip_endpoints).",
)
@click.option("--engine", type=click.Choice(["cascade", "tone"]), default="cascade", show_default=True)
@click.pass_context
@friendly_errors
def sip_media_pool(ctx: click.Context, processes: int | None, endpoints: int | None, engine: str) -> None:
    """Run and supervise several SIP media processes (SIP ports sip_port and up, one per endpoint)."""
    import os
    import signal

    from voiceagent.bridges.sip.supervisor import SipMediaSupervisor, plan_processes

    settings = settings_from(ctx)
    env = dict(os.environ)
    if ctx.obj is not None:
        env["VOICEAGENT_CONFIG"] = str(ctx.obj)  # the children read the same settings file

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        specs = plan_processes(settings, processes or settings.sip_processes, endpoints=endpoints)
        supervisor = SipMediaSupervisor(specs, max_calls=settings.sip_max_calls, engine=engine, env=env)
        await supervisor.start()
        click.echo("SIP media processes: " + " ".join(supervisor.sip_targets))
        try:
            await stop.wait()
        finally:
            await supervisor.aclose()

    asyncio.run(run())


@click.command("sip-edge")
@click.option("--host", default=None, help="Listen address (default: sip_edge_host).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="UDP+TCP (default: sip_edge_port).")
@click.option("--media", multiple=True, help="Media process host:port (repeatable; default: sip_edge_media).")
@click.option("--max-calls", type=click.IntRange(min=1), default=None, help="Calls past this get 503.")
@click.option(
    "--runtime-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
    help="Where kamailio.cfg and its sockets go (default: a temp dir).",
)  # fmt: skip
@click.option("--print-config", is_flag=True, help="Print the generated kamailio.cfg and exit.")
@click.pass_context
@friendly_errors
def sip_edge(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    media: tuple[str, ...],
    max_calls: int | None,
    runtime_dir: Path | None,
    print_config: bool,
) -> None:
    """The SIP edge: a supervised Kamailio in front of the SIP media processes (docs/sip-edge.md)."""

    from voiceagent.bridges.sip.edge import EdgeConfig, write_edge_files
    from voiceagent.bridges.sip.edge.command import run_edge

    overrides: dict[str, object] = {"host": host, "port": port, "max_calls": max_calls}
    if media:
        overrides["media"] = media
    config = EdgeConfig.from_settings(
        settings_from(ctx), **{k: v for k, v in overrides.items() if v is not None}
    )
    if print_config:
        with tempfile.TemporaryDirectory(prefix="voiceagent-edge-") as scratch:
            click.echo(write_edge_files(config, runtime_dir or Path(scratch)).cfg.read_text(), nl=False)
        return
    asyncio.run(run_edge(config, runtime_dir, on_ready=lambda message: click.echo(message, err=True)))
