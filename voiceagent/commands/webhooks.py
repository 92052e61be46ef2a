"""``voiceagent webhooks ...``: endpoints, the delivery log, resend, secret rotation."""

from __future__ import annotations

import asyncio
import sys

import click

from voiceagent.commands.common import friendly_errors, settings_from

__all__ = ["webhooks"]


# --- webhooks (begin)
@click.group()
def webhooks() -> None:
    """Signed webhooks: register endpoints, read the delivery log, resend, rotate secrets."""


@webhooks.command("add")
@click.argument("url")
@click.option("--events", required=True, help="Comma-separated, e.g. call.ended,turn.completed.")
@click.option("--agent", default=None, help="Only this agent's calls (default: every agent's).")
@click.option("--description", default="", help="A note for the list.")
@click.pass_context
@friendly_errors
def webhooks_add(ctx: click.Context, url: str, events: str, agent: str | None, description: str) -> None:
    """Send EVENTS to URL; prints the endpoint's signing secret (whsec_...) once."""
    from voiceagent.webhooks.admin import add_endpoint

    made = asyncio.run(
        add_endpoint(settings_from(ctx), url=url, events=events, agent=agent, description=description)
    )
    click.echo(made.secret)
    click.echo(f"id {made.endpoint.id}: store the secret now, it is not shown again", err=True)


@webhooks.command("list")
@click.pass_context
@friendly_errors
def webhooks_list(ctx: click.Context) -> None:
    """List endpoints (ids, URLs, events, state; never secrets)."""
    from voiceagent.webhooks.admin import endpoint_list

    for ep in asyncio.run(endpoint_list(settings_from(ctx))):
        state = "enabled" if ep.enabled else f"disabled ({ep.disabled_reason})"
        click.echo(f"{ep.id}  {ep.url}  [{','.join(ep.event_types)}]  agent={ep.agent or '*'}  {state}")


@webhooks.command("deliveries")
@click.option("--endpoint", "endpoint_id", default=None, help="Only this endpoint's deliveries.")
@click.option("--status", type=click.Choice(["pending", "succeeded", "failed"]), default=None)
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.pass_context
@friendly_errors
def webhooks_deliveries(ctx: click.Context, endpoint_id: str | None, status: str | None, limit: int) -> None:
    """The delivery log, newest first: status, attempts, response code, latency."""
    from voiceagent.webhooks.admin import delivery_log

    rows = asyncio.run(delivery_log(settings_from(ctx), endpoint_id=endpoint_id, status=status, limit=limit))
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
@friendly_errors
def webhooks_resend(ctx: click.Context, delivery_id: int) -> None:
    """Send delivery DELIVERY_ID again (same webhook-id) at the dispatcher's next poll."""
    from voiceagent.webhooks.admin import resend_delivery

    if asyncio.run(resend_delivery(settings_from(ctx), delivery_id=delivery_id)) is None:
        click.echo(f"error: no webhook delivery {delivery_id}", err=True)
        sys.exit(1)
    click.echo(f"queued {delivery_id}")


@webhooks.command("rotate")
@click.argument("endpoint_id")
@click.option("--overlap-s", type=click.FloatRange(0), default=None, help="Old secret signs too (s).")
@click.pass_context
@friendly_errors
def webhooks_rotate(ctx: click.Context, endpoint_id: str, overlap_s: float | None) -> None:
    """Give ENDPOINT_ID a new secret and print it; the old one also signs during the overlap."""
    from voiceagent.webhooks.admin import rotate_endpoint_secret

    secret = asyncio.run(
        rotate_endpoint_secret(settings_from(ctx), endpoint_id=endpoint_id, overlap_s=overlap_s)
    )
    if secret is None:
        click.echo(f"error: no webhook endpoint {endpoint_id!r}", err=True)
        sys.exit(1)
    click.echo(secret)
