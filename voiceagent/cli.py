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
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from voiceagent import __version__
from voiceagent.config import Settings, load_settings
from voiceagent.errors import VoiceAgentError

__all__ = ["main"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _friendly_errors(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn our own errors into a one-line message and exit status 2."""

    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except VoiceAgentError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


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


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    return load_settings(ctx.obj, **{k: v for k, v in overrides.items() if v is not None})


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
@_friendly_errors
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

    settings = _settings(ctx, agent_path=agent_path)
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
@_friendly_errors
def models(ctx: click.Context, as_json: bool) -> None:
    """List the packaged speech models, where they are, and whether their sha256 checks out."""
    from voiceagent.packaged_models import check_all

    settings = _settings(ctx)
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


@cli.group()
def bench() -> None:
    """Benchmarks that print figures (never pass/fail)."""


@bench.command("first-audio")
@click.option("--repeat", default=3, show_default=True, help="Calls per shipped question.")
@click.option("--realtime", is_flag=True, help="Stream at real time instead of skipping idle time.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_friendly_errors
def bench_first_audio(ctx: click.Context, repeat: int, realtime: bool, as_json: bool) -> None:
    """First agent audio after the caller stops, over the shipped example questions."""
    from voiceagent.bench.first_audio import run_first_audio_bench

    result = asyncio.run(run_first_audio_bench(_settings(ctx), repeat=repeat, realtime=realtime))
    click.echo(json.dumps(result, indent=2) if as_json else result["table"])


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default: api_bind_host, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port (default: api_bind_port, 8080)."
)
@click.pass_context
@_friendly_errors
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the REST API and browser calls (http://HOST:PORT/call) on the embedded defaults."""
    from voiceagent.api.server import serve as serve_api

    serve_api(_settings(ctx), host=host, port=port)


@cli.group()
def apikey() -> None:
    """REST API keys: create, list, revoke."""


_SCOPES = (
    "calls:read",
    "agents:read",
    "agents:write",
    "memory:delete",
    "webhooks:read",
    "webhooks:write",
    "admin",
)


@apikey.command("create")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(_SCOPES),
    help="What the key may do (repeat for several); admin may do everything.",
)
@click.option("--name", required=True, help="Who or what uses the key (for listing and audit).")
@click.pass_context
@_friendly_errors
def apikey_create(ctx: click.Context, scopes: tuple[str, ...], name: str) -> None:
    """Make an API key and print it once: only its SHA-256 is stored."""
    from voiceagent.api.keys import issue_api_key

    made = asyncio.run(issue_api_key(_settings(ctx), name=name, scopes=scopes))
    click.echo(made.key)
    note = f"id {made.record.id}, scopes {made.record.scopes}: store the key now, it is not shown again"
    click.echo(note, err=True)


@apikey.command("list")
@click.pass_context
@_friendly_errors
def apikey_list(ctx: click.Context) -> None:
    """List API keys (ids, names, scopes; never secrets)."""
    from voiceagent.api.keys import list_keys

    for key in asyncio.run(list_keys(_settings(ctx))):
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        click.echo(f"{key.id}  {key.name:<24} {key.scopes:<40} {key.created_at:%Y-%m-%d} {state}")


@apikey.command("revoke")
@click.argument("key_id")
@click.pass_context
@_friendly_errors
def apikey_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke the key whose id (the part after va_) is KEY_ID."""
    from voiceagent.api.keys import revoke_key

    if not asyncio.run(revoke_key(_settings(ctx), key_id=key_id)):
        click.echo(f"error: no API key {key_id!r}", err=True)
        sys.exit(1)
    click.echo(f"revoked {key_id}")


@cli.command()
@click.option("--url", help="Database URL (default: database_url from settings / VOICEAGENT_DATABASE_URL).")
@click.option("--revision", default=None, help="Target revision (default: head; with --down: required).")
@click.option("--down", is_flag=True, help="Downgrade to --revision (base: drop the call-log tables).")
@click.pass_context
@_friendly_errors
def migrate(ctx: click.Context, url: str | None, revision: str | None, down: bool) -> None:
    """Create or update the call log's tables (Alembic migrations in migrations/)."""
    from voiceagent.store.engine import display_url
    from voiceagent.store.migrate import downgrade, upgrade

    target = url or _settings(ctx).database_url
    if down:
        if revision is None:
            raise click.UsageError("--down needs --revision (a revision id, or base)")
        downgrade(target, revision)
    else:
        revision = revision or "head"
        upgrade(target, revision)
    click.echo(f"call log at {revision}: {display_url(target)}")


@bench.command("calllog")
@click.option("--url", help="Database URL (default: a throw-away SQLite file).")
@click.option("--calls", default=1000, show_default=True, help="Simulated calls.")
@click.option("--events", "events_per_call", default=100, show_default=True, help="Timeline events per call.")
@click.option("--concurrent", default=100, show_default=True, help="Calls live at once.")
@click.option("--rate", "rate_per_s", type=float, default=None, help="Records/s overall (default: flat out).")
@click.option("--max-queue", default=50_000, show_default=True, help="Writer queue before it spills.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_friendly_errors
def bench_calllog(
    ctx: click.Context,
    url: str | None,
    calls: int,
    events_per_call: int,
    concurrent: int,
    rate_per_s: float | None,
    max_queue: int,
    as_json: bool,
) -> None:
    """Call-log write path: submit() time on the media loop (us) and rows/s into the database."""
    from voiceagent.bench.calllog import run_calllog_bench

    result = asyncio.run(
        run_calllog_bench(
            _settings(ctx),
            url=url,
            calls=calls,
            events_per_call=events_per_call,
            concurrent=concurrent,
            rate_per_s=rate_per_s,
            max_queue=max_queue,
        )
    )
    click.echo(json.dumps(result, indent=2) if as_json else result["table"])


@bench.command("engine")
@click.option(
    "--preset",
    "preset_name",
    default="tiny",
    show_default=True,
    type=click.Choice(["tiny", "small", "1b-active"]),
    help="Model size (random weights: speed does not depend on them).",
)
@click.option("--device", default=None, help="cuda or cpu [default: cuda when there is one].")
@click.option("--time-cap-s", default=40.0, show_default=True, help="Time cap per engine, search of N.")
@click.option(
    "--clock",
    type=click.Choice(["wall", "cpu"]),
    default="wall",
    show_default=True,
    help="cpu: CPU time on one thread (for a shared CPU).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_friendly_errors
def bench_engine(preset_name: str, device: str | None, time_cap_s: float, clock: str, as_json: bool) -> None:
    """Batched speech-LM engine vs naive per-call serving: real-time calls, first frame, cache bytes."""
    from voiceagent.serving.bench import BenchSettings, run_engine_bench

    settings = BenchSettings(preset=preset_name, device=device, time_cap_s=time_cap_s, clock=clock)
    result = run_engine_bench(settings)
    figures = {k: v for k, v in result.items() if k != "table"}
    click.echo(json.dumps(figures, indent=2) if as_json else result["table"])


@bench.command("bargein")
@click.option("--calls", default=25, show_default=True, help="Calls per scenario (4 scenarios).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_friendly_errors
def bench_bargein(ctx: click.Context, calls: int, as_json: bool) -> None:
    """Barge-in stop time, truncation accuracy, backchannels, echo and noise on synthetic calls."""
    from voiceagent.bench.bargein import run_bargein_bench

    result = asyncio.run(run_bargein_bench(_settings(ctx), calls_per_scenario=calls))
    click.echo(json.dumps(result, indent=2) if as_json else result["table"])


@cli.group()
def admin() -> None:
    """Admin-console users: create, list."""


@admin.command("create")
@click.option("--email", required=True, help="The admin's login.")
@click.option(
    "--role",
    type=click.Choice(["admin", "viewer"]),
    default="admin",
    show_default=True,
    help="admin may change things; viewer only looks.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of prompting.")
@click.pass_context
@_friendly_errors
def admin_create(ctx: click.Context, email: str, role: str, password_stdin: bool) -> None:
    """Make a console admin (the password is prompted for, never taken as an argument)."""
    from voiceagent.console.manage import add_admin

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    made = asyncio.run(add_admin(_settings(ctx), email=email, password=password, role=role))
    click.echo(f"created {made.role} {made.email}")


@admin.command("list")
@click.pass_context
@_friendly_errors
def admin_list(ctx: click.Context) -> None:
    """List console admins (never password hashes)."""
    from voiceagent.console.manage import list_admins

    for row in asyncio.run(list_admins(_settings(ctx))):
        state = f"disabled {row.disabled_at:%Y-%m-%d}" if row.disabled_at else "active"
        click.echo(f"{row.email:<32} {row.role:<7} {row.created_at:%Y-%m-%d} {state}")


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
@_friendly_errors
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

    settings = _settings(
        ctx, worker_host=host, worker_port=port, worker_capacity=capacity, worker_id=worker_id
    )
    asyncio.run(run_worker(settings, engine_name, reply_ms=reply_ms, e2e_preset=e2e_preset, device=device))


@cli.command("sip-media")
@click.option("--sip-port", type=click.IntRange(1, 65535), default=None, help="SIP port (default: sip_port).")
@click.option("--rtp-port-range", default=None, help="RTP ports A-B (default: sip_rtp_ports).")
@click.option(
    "--max-calls", type=click.IntRange(1, 3), default=None, help="Calls at once (default: sip_max_calls)."
)
@click.option("--allow", multiple=True, help="Also accept SIP from this IP/CIDR (repeatable).")
@click.option("--control-port", type=click.IntRange(1, 65535), default=None, help="Local HTTP control port.")
@click.option("--engine", type=click.Choice(["cascade", "tone"]), default="cascade", show_default=True)
@click.option("--no-log", is_flag=True, help="Do not write calls to the call log.")
@click.pass_context
@_friendly_errors
def sip_media(
    ctx: click.Context,
    sip_port: int | None,
    rtp_port_range: str | None,
    max_calls: int | None,
    allow: tuple[str, ...],
    control_port: int | None,
    engine: str,
    no_log: bool,
) -> None:
    """One SIP media process (pjsua2, needs voiceagent[sip]): answers and places calls (docs/sip.md)."""
    from voiceagent.bridges.sip.options import parse_port_range
    from voiceagent.bridges.sip.process import run as run_sip_media

    run_sip_media(
        _settings(ctx),
        sip_port=sip_port,
        rtp_ports=parse_port_range(rtp_port_range) if rtp_port_range else None,
        max_calls=max_calls,
        allow=allow,
        control_port=control_port,
        engine="tone" if engine == "tone" else "cascade",
        call_log=not no_log,
    )


@cli.command("sip-media-pool")
@click.option("--processes", type=click.IntRange(1, 64), default=None, help="Default: sip_processes.")
@click.option("--engine", type=click.Choice(["cascade", "tone"]), default="cascade", show_default=True)
@click.pass_context
@_friendly_errors
def sip_media_pool(ctx: click.Context, processes: int | None, engine: str) -> None:
    """Run and supervise several SIP media processes (ports sip_port, sip_port+1, ...)."""
    import os
    import signal

    from voiceagent.bridges.sip.supervisor import SipMediaSupervisor, plan_processes

    settings = _settings(ctx)
    env = dict(os.environ)
    if ctx.obj is not None:
        env["VOICEAGENT_CONFIG"] = str(ctx.obj)  # the children read the same settings file

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        specs = plan_processes(settings, processes or settings.sip_processes)
        supervisor = SipMediaSupervisor(specs, max_calls=settings.sip_max_calls, engine=engine, env=env)
        await supervisor.start()
        click.echo("SIP media processes: " + " ".join(supervisor.sip_targets))
        try:
            await stop.wait()
        finally:
            await supervisor.aclose()

    asyncio.run(run())


# --- webhooks (begin)
@cli.group()
def webhooks() -> None:
    """Signed webhooks: register endpoints, read the delivery log, resend, rotate secrets."""


@webhooks.command("add")
@click.argument("url")
@click.option("--events", required=True, help="Comma-separated, e.g. call.ended,turn.completed.")
@click.option("--agent", default=None, help="Only this agent's calls (default: every agent's).")
@click.option("--description", default="", help="A note for the list.")
@click.pass_context
@_friendly_errors
def webhooks_add(ctx: click.Context, url: str, events: str, agent: str | None, description: str) -> None:
    """Send EVENTS to URL; prints the endpoint's signing secret (whsec_...) once."""
    from voiceagent.webhooks.admin import add_endpoint

    made = asyncio.run(
        add_endpoint(_settings(ctx), url=url, events=events, agent=agent, description=description)
    )
    click.echo(made.secret)
    click.echo(f"id {made.endpoint.id}: store the secret now, it is not shown again", err=True)


@webhooks.command("list")
@click.pass_context
@_friendly_errors
def webhooks_list(ctx: click.Context) -> None:
    """List endpoints (ids, URLs, events, state; never secrets)."""
    from voiceagent.webhooks.admin import endpoint_list

    for ep in asyncio.run(endpoint_list(_settings(ctx))):
        state = "enabled" if ep.enabled else f"disabled ({ep.disabled_reason})"
        click.echo(f"{ep.id}  {ep.url}  [{','.join(ep.event_types)}]  agent={ep.agent or '*'}  {state}")


@webhooks.command("deliveries")
@click.option("--endpoint", "endpoint_id", default=None, help="Only this endpoint's deliveries.")
@click.option("--status", type=click.Choice(["pending", "succeeded", "failed"]), default=None)
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.pass_context
@_friendly_errors
def webhooks_deliveries(ctx: click.Context, endpoint_id: str | None, status: str | None, limit: int) -> None:
    """The delivery log, newest first: status, attempts, response code, latency."""
    from voiceagent.webhooks.admin import delivery_log

    rows = asyncio.run(delivery_log(_settings(ctx), endpoint_id=endpoint_id, status=status, limit=limit))
    for d in rows:
        code = d.response_code if d.response_code is not None else "-"
        latency = f"{d.latency_ms:.0f}ms" if d.latency_ms is not None else "-"
        click.echo(
            f"{d.id}  {d.endpoint_id}  {d.event_id}  {d.status}  attempts={d.attempts}  code={code}"
            f"  {latency}  {d.last_error or ''}".rstrip()
        )


@webhooks.command("resend")
@click.argument("delivery_id", type=int)
@click.pass_context
@_friendly_errors
def webhooks_resend(ctx: click.Context, delivery_id: int) -> None:
    """Send delivery DELIVERY_ID again (same webhook-id) at the dispatcher's next poll."""
    from voiceagent.webhooks.admin import resend_delivery

    if asyncio.run(resend_delivery(_settings(ctx), delivery_id=delivery_id)) is None:
        click.echo(f"error: no webhook delivery {delivery_id}", err=True)
        sys.exit(1)
    click.echo(f"queued {delivery_id}")


@webhooks.command("rotate")
@click.argument("endpoint_id")
@click.option("--overlap-s", type=click.FloatRange(0), default=None, help="Old secret signs too (s).")
@click.pass_context
@_friendly_errors
def webhooks_rotate(ctx: click.Context, endpoint_id: str, overlap_s: float | None) -> None:
    """Give ENDPOINT_ID a new secret and print it; the old one also signs during the overlap."""
    from voiceagent.webhooks.admin import rotate_endpoint_secret

    secret = asyncio.run(rotate_endpoint_secret(_settings(ctx), endpoint_id=endpoint_id, overlap_s=overlap_s))
    if secret is None:
        click.echo(f"error: no webhook endpoint {endpoint_id!r}", err=True)
        sys.exit(1)
    click.echo(secret)


@bench.command("webhooks")
@click.option("--events", default=2000, show_default=True, help="Events to deliver.")
@click.option("--concurrency", default=16, show_default=True, help="Attempts in flight.")
@click.option("--database", default=None, help="postgresql+asyncpg://... (default: a temporary SQLite file).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_friendly_errors
def bench_webhooks(events: int, concurrency: int, database: str | None, as_json: bool) -> None:
    """Webhook delivery throughput to a verifying receiver on loopback (events/s, latency)."""
    from voiceagent.bench.webhooks import describe, run_webhooks_bench

    result = asyncio.run(run_webhooks_bench(events=events, concurrency=concurrency, database=database))
    click.echo(json.dumps(result) if as_json else describe(result))


# --- webhooks (end)


@bench.command("realtime")
@click.option("--sessions", default=1, show_default=True, help="Sessions at once.")
@click.option("--turns", default=20, show_default=True, help="Replies per session.")
@click.option("--reply-ms", default=400, show_default=True, help="Length of each reply (20 ms chunks).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_friendly_errors
def bench_realtime(sessions: int, turns: int, reply_ms: int, as_json: bool) -> None:
    """Latency the worker protocol adds: in-process engine vs the same engine over WebSocket (loopback)."""
    from voiceagent.bench.realtime import run_realtime_bench

    result = asyncio.run(run_realtime_bench(sessions=sessions, turns=turns, reply_ms=reply_ms))
    figures = {k: v for k, v in result.items() if k != "table"}
    click.echo(json.dumps(figures, indent=2) if as_json else result["table"])


@cli.command("sip-edge")
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
@_friendly_errors
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
    import tempfile

    from voiceagent.bridges.sip.edge import EdgeConfig, write_edge_files
    from voiceagent.bridges.sip.edge.command import run_edge

    overrides: dict[str, object] = {"host": host, "port": port, "max_calls": max_calls}
    if media:
        overrides["media"] = media
    config = EdgeConfig.from_settings(_settings(ctx), **{k: v for k, v in overrides.items() if v is not None})
    if print_config:
        with tempfile.TemporaryDirectory(prefix="voiceagent-edge-") as scratch:
            click.echo(write_edge_files(config, runtime_dir or Path(scratch)).cfg.read_text(), nl=False)
        return
    asyncio.run(run_edge(config, runtime_dir, on_ready=lambda message: click.echo(message, err=True)))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="voiceagent")
