"""``voiceagent apikey ...`` and ``voiceagent admin ...``: REST API keys and console admins."""

from __future__ import annotations

import asyncio
import sys

import click

from voiceagent.commands.common import friendly_errors, settings_from

__all__ = ["admin", "apikey"]


@click.group()
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
@friendly_errors
def apikey_create(ctx: click.Context, scopes: tuple[str, ...], name: str) -> None:
    """Make an API key and print it once: only its SHA-256 is stored."""
    from voiceagent.api.keys import issue_api_key

    made = asyncio.run(issue_api_key(settings_from(ctx), name=name, scopes=scopes))
    click.echo(made.key)
    note = f"id {made.record.id}, scopes {made.record.scopes}: store the key now, it is not shown again"
    click.echo(note, err=True)


@apikey.command("list")
@click.pass_context
@friendly_errors
def apikey_list(ctx: click.Context) -> None:
    """List API keys (ids, names, scopes; never secrets)."""
    from voiceagent.api.keys import list_keys

    for key in asyncio.run(list_keys(settings_from(ctx))):
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        click.echo(f"{key.id}  {key.name:<24} {key.scopes:<40} {key.created_at:%Y-%m-%d} {state}")


@apikey.command("revoke")
@click.argument("key_id")
@click.pass_context
@friendly_errors
def apikey_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke the key whose id (the part after va_) is KEY_ID."""
    from voiceagent.api.keys import revoke_key

    if not asyncio.run(revoke_key(settings_from(ctx), key_id=key_id)):
        click.echo(f"error: no API key {key_id!r}", err=True)
        sys.exit(1)
    click.echo(f"revoked {key_id}")


@click.group()
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
@friendly_errors
def admin_create(ctx: click.Context, email: str, role: str, password_stdin: bool) -> None:
    """Make a console admin (the password is prompted for, never taken as an argument)."""
    from voiceagent.console.manage import add_admin

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    made = asyncio.run(add_admin(settings_from(ctx), email=email, password=password, role=role))
    click.echo(f"created {made.role} {made.email}")


@admin.command("list")
@click.pass_context
@friendly_errors
def admin_list(ctx: click.Context) -> None:
    """List console admins (never password hashes)."""
    from voiceagent.console.manage import list_admins

    for row in asyncio.run(list_admins(settings_from(ctx))):
        state = f"disabled {row.disabled_at:%Y-%m-%d}" if row.disabled_at else "active"
        click.echo(f"{row.email:<32} {row.role:<7} {row.created_at:%Y-%m-%d} {state}")
