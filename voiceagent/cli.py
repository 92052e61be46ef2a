"""The ``voiceagent`` command: ``call``, ``serve``, ``worker``, ``sip-edge``, ``sip-media``,
``webhooks``, ``admin``, ``apikey``, ``models``, ``migrate``, ``bench``.

Errors of the :class:`voiceagent.errors.VoiceAgentError` tree end the command with their message and
exit status 2; only real bugs print a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from voiceagent import __version__
from voiceagent.commands import access, bench, sip, webhooks
from voiceagent.commands.common import friendly_errors, settings_from

__all__ = ["main"]


@click.group()
@click.version_option(__version__, prog_name="voiceagent")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="VOICEAGENT_CONFIG",
    help="TOML settings file (VOICEAGENT_* environment variables override it).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, verbose: int) -> None:
    """voiceagent: answer phone and browser calls with a voice agent."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = config_file


@cli.command()
@click.argument("audio", type=click.Path(path_type=Path))
@click.option(
    "--out", "out", type=click.Path(path_type=Path, dir_okay=False), help="Write the agent's side here (WAV)."
)
@click.option(
    "--record", type=click.Path(path_type=Path, dir_okay=False), help="Write both legs as stereo WAV."
)
@click.option(
    "--agent", "agent_path", type=click.Path(path_type=Path), help="Agent definition (YAML or TOML)."
)
@click.option("--fast", is_flag=True, help="Skip idle time instead of streaming at real time.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--events", is_flag=True, help="With --json: include the call's event timeline.")
@click.option("--no-log", is_flag=True, help="Do not write the call to the call log (database_url).")
@click.pass_context
@friendly_errors
def call(
    ctx: click.Context,
    audio: Path,
    out: Path | None,
    record: Path | None,
    agent_path: Path | None,
    fast: bool,
    as_json: bool,
    events: bool,
    no_log: bool,
) -> None:
    """Call the agent with AUDIO as the caller: prints what was said and how fast it answered."""
    from voiceagent.agents import builtin_agent_path, load_agent
    from voiceagent.audio import read_audio
    from voiceagent.calllog import open_call_log
    from voiceagent.engines.loading import load_engine
    from voiceagent.filecall import call_file

    settings = settings_from(ctx, agent_path=agent_path)
    read_audio(audio)  # fail on a bad file before spending a second on loading models
    agent = load_agent(settings.agent_path or builtin_agent_path())

    async def run() -> dict[str, Any]:
        async with open_call_log(settings, enabled=not no_log) as call_log:
            engine = await load_engine(settings, agent)
            try:
                report = await call_file(
                    engine,
                    audio,
                    settings,
                    out=out,
                    record=record,
                    realtime=not fast,
                    barge_in=agent.barge_in,
                    call_log=call_log,
                    agent_name=agent.name,
                )
            finally:
                await engine.aclose()
        return report.as_json(with_events=events)

    report = asyncio.run(run())
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    for turn in report["turns"]:
        click.echo(f"caller: {turn['user_text'] or '(nothing recognised)'}")
        latency = "" if turn["first_audio_ms"] is None else f"  [first audio {turn['first_audio_ms']:.0f} ms]"
        cut = "  [interrupted]" if turn["interrupted"] else ""
        click.echo(f"agent:  {turn['reply_text'] or '(no reply)'}{latency}{cut}")
    if out is not None:
        click.echo(f"wrote {out} ({report['duration_s']:.1f} s)")
    if not no_log:
        from voiceagent.store.engine import display_url

        click.echo(f"logged as {report['call_id']} in {display_url(settings.database_url)}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@friendly_errors
def models(ctx: click.Context, as_json: bool) -> None:
    """List the packaged speech models, where they are, and whether their sha256 checks out."""
    from voiceagent.packaged_models import check_all

    settings = settings_from(ctx)
    rows = list(check_all(settings.model_cache_dir))
    if as_json:
        data = [
            {
                "name": r.model.name,
                "kind": r.model.kind,
                "state": r.state,
                "path": str(r.path) if r.path else None,
                "packages": list(r.model.packages),
                "license": r.model.license,
                "source": r.model.source,
                "detail": r.detail,
            }
            for r in rows
        ]
        click.echo(json.dumps(data, indent=2))
    else:
        for r in rows:
            click.echo(f"{r.model.name:<17} {r.model.kind:<4} {r.state:<18} {r.path or r.detail}")
            click.echo(f"{'':<23}{r.model.license}; {r.model.source}")
    in_use = {settings.asr_model, settings.tts_model, settings.vad_model}
    if any(r.state != "verified" and r.model.name in in_use for r in rows):
        sys.exit(1)


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default: api_bind_host, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port (default: api_bind_port, 8080)."
)
@click.pass_context
@friendly_errors
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the REST API and browser calls (http://HOST:PORT/call) on the embedded defaults."""
    from voiceagent.api.server import serve as serve_api

    serve_api(settings_from(ctx), host=host, port=port)


@cli.command()
@click.option("--url", help="Database URL (default: database_url from settings / VOICEAGENT_DATABASE_URL).")
@click.option("--revision", default=None, help="Target revision (default: head; with --down: required).")
@click.option("--down", is_flag=True, help="Downgrade to --revision (base: drop the call-log tables).")
@click.pass_context
@friendly_errors
def migrate(ctx: click.Context, url: str | None, revision: str | None, down: bool) -> None:
    """Create or update the call log's tables (Alembic migrations in migrations/)."""
    from voiceagent.store.engine import display_url
    from voiceagent.store.migrate import downgrade, upgrade

    target = url or settings_from(ctx).database_url
    if down:
        if revision is None:
            raise click.UsageError("--down needs --revision (a revision id, or base)")
        downgrade(target, revision)
    else:
        revision = revision or "head"
        upgrade(target, revision)
    click.echo(f"call log at {revision}: {display_url(target)}")


@cli.command()
@click.option(
    "--engine",
    "engine_name",
    type=click.Choice(["cascade", "e2e", "scripted"]),
    default="cascade",
    show_default=True,
    help="cascade: CPU models; e2e: the speech LM (torch); scripted: tone replies, for tests and benchmarks.",
)
@click.option("--host", default=None, help="Address to listen on (default: worker_host, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Port (default: worker_port, 8090)."
)
@click.option("--capacity", type=click.IntRange(1), default=None, help="Sessions at once (default: 20).")
@click.option("--worker-id", default=None, help="Name in the pool registry (default: host:port).")
@click.option("--reply-ms", default=1500, show_default=True, help="scripted: length of each reply.")
@click.option("--preset", "e2e_preset", default="tiny", show_default=True, help="e2e: model size.")
@click.option("--device", default=None, help="e2e: cuda or cpu (default: cuda when there is one).")
@click.pass_context
@friendly_errors
def worker(
    ctx: click.Context,
    engine_name: str,
    host: str | None,
    port: int | None,
    capacity: int | None,
    worker_id: str | None,
    reply_ms: int,
    e2e_preset: str,
    device: str | None,
) -> None:
    """Serve an engine over the Realtime protocol at ws://HOST:PORT/v1/realtime (one per GPU).

    Token: VOICEAGENT_WORKER_TOKEN. With VOICEAGENT_REDIS_URL set the worker joins the pool
    registry. SIGTERM drains: no new calls, open calls finish, then exit. See docs/workers.md.
    """
    from voiceagent.worker.process import run_worker

    settings = settings_from(
        ctx, worker_host=host, worker_port=port, worker_capacity=capacity, worker_id=worker_id
    )
    asyncio.run(run_worker(settings, engine_name, reply_ms=reply_ms, e2e_preset=e2e_preset, device=device))


# Command groups that live beside the subsystem they drive.
for _command in (
    access.admin,
    access.apikey,
    bench.bench,
    sip.sip_edge,
    sip.sip_media,
    sip.sip_media_pool,
    webhooks.webhooks,
):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="voiceagent")
