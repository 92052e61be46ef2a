"""SIP as the console sees it: trunks from settings with their registration state, and live SIP calls.

The API process owns no SIP stack. The SIP media processes (voiceagent.bridges.sip) each answer on
a local control endpoint (``sip_control_urls``, docs/sip.md): ``GET /health`` reports their trunks'
registrations and ``/calls`` lists, hangs up and transfers their calls. A process that does not
answer is reported as such; it never breaks the page.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from voiceagent.bridges.sip.trunks import SipTrunk, load_trunks
from voiceagent.config import Settings
from voiceagent.errors import ConfigError, LiveCallError
from voiceagent.media.live import LiveCall

__all__ = ["SipControlLiveSource", "TrunkState", "trunk_states"]

logger = logging.getLogger(__name__)

_TIMEOUT_S = 1.5  # a page waits at most this long for a media process that hangs


@dataclass(frozen=True, slots=True)
class TrunkState:
    """One configured trunk and what the media processes last heard from its registrar."""

    name: str
    uri: str
    registers: bool
    numbers: int
    state: str
    ok: bool | None  # None: nothing to say (IP-authenticated, or no process answered)
    detail: str


async def _health(client: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    try:
        reply = await client.get(f"{url}/health")
        reply.raise_for_status()
        data = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        logger.warning("SIP media process %s did not answer: %s", url, exc)
        return None
    return data if isinstance(data, dict) else None


def _verdict(
    trunk: SipTrunk, heard: list[dict[str, Any]], answered: int, asked: int
) -> tuple[str, bool | None, str]:
    """(state, ok, detail) of one trunk from what the processes that answered said."""
    if not trunk.registers:
        return "IP-authenticated", None, f"trusted: {', '.join(trunk.source_ips) or 'no source addresses'}"
    if asked == 0:
        return "unknown", None, "no SIP media process is configured"
    if not heard:
        return "unknown", None, "no SIP media process answered" if answered == 0 else "not registering yet"
    registered = [h for h in heard if h.get("registered")]
    last = (registered or heard)[0]
    detail = f"{last.get('code', 0)} {last.get('reason', '')}".strip()
    if registered:
        return "registered", True, f"{detail}, {len(registered)}/{asked} processes"
    return "not registered", False, f"{detail}, {last.get('failures', 0)} failures"


def _state(trunk: SipTrunk, heard: list[dict[str, Any]], answered: int, asked: int) -> TrunkState:
    state, ok, detail = _verdict(trunk, heard, answered, asked)
    return TrunkState(trunk.name, trunk.uri, trunk.registers, len(trunk.numbers), state, ok, detail)


async def trunk_states(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[list[TrunkState], str | None]:
    """Every configured trunk with its registration state, and a configuration problem if any."""
    try:
        trunks = load_trunks(settings)
    except ConfigError as exc:
        return [], str(exc)
    urls = [u.rstrip("/") for u in settings.sip_control_urls]
    async with httpx.AsyncClient(timeout=_TIMEOUT_S, transport=transport) as client:
        replies = await asyncio.gather(*(_health(client, url) for url in urls))
    answered = [r for r in replies if r is not None]
    states = []
    for trunk in trunks:
        heard = [r["registrations"][trunk.name] for r in answered if trunk.name in r.get("registrations", {})]
        states.append(_state(trunk, heard, len(answered), len(urls)))
    return states, None


class SipControlLiveSource:
    """Live SIP calls of every media process, with hang-up and transfer through their control endpoints."""

    def __init__(self, urls: list[str], *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self._transport = transport
        # The processes report no start time; the first listing is within one poll of it.
        self._first_seen: dict[str, datetime] = {}
        self._owner: dict[str, str] = {}

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=_TIMEOUT_S, transport=self._transport)

    async def _calls_of(self, client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
        try:
            reply = await client.get(f"{url}/calls")
            reply.raise_for_status()
            calls = reply.json()["calls"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            logger.warning("SIP media process %s did not list its calls: %s", url, exc)
            return []
        return [dict(c, _url=url) for c in calls if isinstance(c, dict) and "call_id" in c]

    async def live_calls(self) -> list[LiveCall]:
        async with self._client() as client:
            found = [
                c
                for batch in await asyncio.gather(*(self._calls_of(client, u) for u in self.urls))
                for c in batch
            ]
        now = datetime.now(UTC)
        ids = {str(c["call_id"]) for c in found}
        for gone in set(self._first_seen) - ids:
            self._first_seen.pop(gone, None)
            self._owner.pop(gone, None)
        calls = []
        for call in found:
            call_id = str(call["call_id"])
            self._owner[call_id] = call["_url"]
            inbound = call.get("direction") == "inbound"
            calls.append(
                LiveCall(
                    call_id=call_id,
                    channel="sip",
                    started_at=self._first_seen.setdefault(call_id, now),
                    to_number=None if inbound else call.get("to"),
                    from_number=call.get("to") if inbound else None,
                    can_transfer=True,
                )
            )
        return calls

    async def _post(self, call_id: str, action: str, body: dict[str, str]) -> None:
        url = self._owner.get(call_id)
        if url is None:
            raise LiveCallError(f"no live call {call_id!r}")
        try:
            async with self._client() as client:
                reply = await client.post(f"{url}/calls/{call_id}/{action}", json=body)
        except httpx.HTTPError as exc:
            raise LiveCallError(f"the SIP media process for {call_id!r} did not answer: {exc}") from exc
        if reply.status_code >= 400:
            try:
                message = str(reply.json().get("error", reply.text))
            except ValueError:
                message = reply.text[:200]
            raise LiveCallError(message)

    async def hang_up_live(self, call_id: str, reason: str) -> None:
        await self._post(call_id, "hangup", {})

    async def transfer_live(self, call_id: str, target: str) -> None:
        await self._post(call_id, "transfer", {"to": target})
