"""``voiceagent bench ...``: benchmarks that print figures, never pass/fail."""

from __future__ import annotations

import asyncio
import json

import click

from voiceagent.commands.common import friendly_errors, settings_from

__all__ = ["bench"]


@click.group()
def bench() -> None:
    """Benchmarks that print figures (never pass/fail)."""


@bench.command("first-audio")
@click.option("--repeat", default=3, show_default=True, help="Calls per shipped question.")
@click.option("--realtime", is_flag=True, help="Stream at real time instead of skipping idle time.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@friendly_errors
def bench_first_audio(ctx: click.Context, repeat: int, realtime: bool, as_json: bool) -> None:
    """First agent audio after the caller stops, over the shipped example questions."""
    from voiceagent.bench.first_audio import run_first_audio_bench

    result = asyncio.run(run_first_audio_bench(settings_from(ctx), repeat=repeat, realtime=realtime))
    click.echo(json.dumps(result, indent=2) if as_json else result["table"])


@bench.command("calllog")
@click.option("--url", help="Database URL (default: a throw-away SQLite file).")
@click.option("--calls", default=1000, show_default=True, help="Simulated calls.")
@click.option("--events", "events_per_call", default=100, show_default=True, help="Timeline events per call.")
@click.option("--concurrent", default=100, show_default=True, help="Calls live at once.")
@click.option("--rate", "rate_per_s", type=float, default=None, help="Records/s overall (default: flat out).")
@click.option("--max-queue", default=50_000, show_default=True, help="Writer queue before it spills.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@friendly_errors
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
            settings_from(ctx),
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
@friendly_errors
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
@friendly_errors
def bench_bargein(ctx: click.Context, calls: int, as_json: bool) -> None:
    """Barge-in stop time, truncation accuracy, backchannels, echo and noise on synthetic calls."""
    from voiceagent.bench.bargein import run_bargein_bench

    result = asyncio.run(run_bargein_bench(settings_from(ctx), calls_per_scenario=calls))
    click.echo(json.dumps(result, indent=2) if as_json else result["table"])


@bench.command("webhooks")
@click.option("--events", default=2000, show_default=True, help="Events to deliver.")
@click.option("--concurrency", default=16, show_default=True, help="Attempts in flight.")
@click.option("--database", default=None, help="postgresql+asyncpg://... (default: a temporary SQLite file).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly_errors
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
@friendly_errors
def bench_realtime(sessions: int, turns: int, reply_ms: int, as_json: bool) -> None:
    """Latency the worker protocol adds: in-process engine vs the same engine over WebSocket (loopback)."""
    from voiceagent.bench.realtime import run_realtime_bench

    result = asyncio.run(run_realtime_bench(sessions=sessions, turns=turns, reply_ms=reply_ms))
    figures = {k: v for k, v in result.items() if k != "table"}
    click.echo(json.dumps(figures, indent=2) if as_json else result["table"])
