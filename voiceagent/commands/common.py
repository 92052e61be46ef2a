"""What every ``voiceagent`` command shares: settings from the root options, and one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click

from voiceagent.config import Settings, load_settings
from voiceagent.errors import VoiceAgentError

__all__ = ["friendly_errors", "settings_from"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def friendly_errors(fn: Callable[_P, _R]) -> Callable[_P, _R]:
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


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings from the root ``--config`` file (kept in ``ctx.obj``), env, and ``overrides``."""
    return load_settings(ctx.obj, **{k: v for k, v in overrides.items() if v is not None})
