"""SIP trunks: pjsua2 media processes that answer and place calls for the agent (docs/sip.md).

Needs the ``voiceagent[sip]`` extra (pjsua2, GPL-2.0). Importing this package does not import
pjsua2; the modules that do are imported when a media process starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["run_media_process"]

if TYPE_CHECKING:
    from voiceagent.config import Settings


def run_media_process(settings: Settings, **kwargs: Any) -> None:
    """Run one SIP media process until SIGTERM/SIGINT (see :func:`voiceagent.bridges.sip.process.run`)."""
    from voiceagent.bridges.sip.process import run

    run(settings, **kwargs)
