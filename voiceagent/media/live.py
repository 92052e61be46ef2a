"""Which calls are live right now, and how to end or transfer one: what the console shows and acts on.

Bridges that own their calls (the WebRTC service) plug in as a :class:`LiveSource`; calls that
have no such owner (a file call) register themselves with :meth:`LiveCallRegistry.add` for as long
as they run. The registry only knows how to *ask* a call's owner to end it: ending stays the
owner's job, so a call is never torn down behind its bridge's back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from voiceagent.errors import LiveCallError

__all__ = ["HangUp", "LiveCall", "LiveCallRegistry", "LiveSource", "Transfer"]

HangUp = Callable[[str], Awaitable[None]]
"""Ask the call's owner to end it; the argument is the reason recorded in the call log."""
Transfer = Callable[[str], Awaitable[None]]
"""Ask the call's owner to transfer it; the argument is the target (a SIP URI or number)."""


@dataclass(frozen=True, slots=True)
class LiveCall:
    """A live call as the console lists it."""

    call_id: str
    channel: str
    started_at: datetime
    agent: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    turns: int = 0
    can_transfer: bool = False


class LiveSource(Protocol):
    """A bridge's live calls and the actions on them (raise :class:`LiveCallError` if unknown)."""

    async def live_calls(self) -> list[LiveCall]: ...

    async def hang_up_live(self, call_id: str, reason: str) -> None: ...

    async def transfer_live(self, call_id: str, target: str) -> None: ...


@dataclass
class _Entry:
    call: LiveCall
    hang_up: HangUp
    transfer: Transfer | None
    turns: Callable[[], int] | None = None


@dataclass
class LiveCallRegistry:
    """Live calls of this process: registered ones plus those of every attached source."""

    _entries: dict[str, _Entry] = field(default_factory=dict)
    _sources: list[LiveSource] = field(default_factory=list)

    def attach(self, source: LiveSource) -> None:
        """List ``source``'s calls too and route actions on them to it."""
        self._sources.append(source)

    def add(
        self,
        call: LiveCall,
        *,
        hang_up: HangUp,
        transfer: Transfer | None = None,
        turns: Callable[[], int] | None = None,
    ) -> None:
        """Register a call that has no source of its own; ``turns`` reports its turn count."""
        if call.call_id in self._entries:
            raise LiveCallError(f"call {call.call_id!r} is already registered as live")
        self._entries[call.call_id] = _Entry(call, hang_up, transfer, turns)

    def discard(self, call_id: str) -> None:
        """Forget a registered call (it ended); unknown ids are ignored."""
        self._entries.pop(call_id, None)

    @contextmanager
    def registered(
        self,
        call: LiveCall,
        *,
        hang_up: HangUp,
        transfer: Transfer | None = None,
        turns: Callable[[], int] | None = None,
    ) -> Iterator[None]:
        """The call is live inside the ``with`` block and gone after it, however it ends."""
        self.add(call, hang_up=hang_up, transfer=transfer, turns=turns)
        try:
            yield
        finally:
            self.discard(call.call_id)

    async def calls(self) -> list[LiveCall]:
        """Every live call, oldest first."""
        found = []
        for entry in self._entries.values():
            call = entry.call
            if entry.turns is not None:
                call = replace(call, turns=entry.turns())
            found.append(call)
        for source in self._sources:
            found.extend(await source.live_calls())
        return sorted(found, key=lambda c: (c.started_at, c.call_id))

    async def get(self, call_id: str) -> LiveCall | None:
        """The live call with this id, or None."""
        return next((c for c in await self.calls() if c.call_id == call_id), None)

    async def hang_up(self, call_id: str, reason: str = "console_hangup") -> None:
        """End a live call; :class:`LiveCallError` if there is none with this id."""
        entry = self._entries.get(call_id)
        if entry is not None:
            await entry.hang_up(reason)
            return
        await (await self._source_of(call_id)).hang_up_live(call_id, reason)

    async def transfer(self, call_id: str, target: str) -> None:
        """Transfer a live call to ``target``; :class:`LiveCallError` if unknown or unsupported."""
        if not target.strip():
            raise LiveCallError("a transfer needs a target (a SIP URI or a number)")
        entry = self._entries.get(call_id)
        if entry is not None:
            if entry.transfer is None:
                raise LiveCallError(f"{entry.call.channel} calls cannot be transferred")
            await entry.transfer(target)
            return
        await (await self._source_of(call_id)).transfer_live(call_id, target)

    async def _source_of(self, call_id: str) -> LiveSource:
        for source in self._sources:
            if any(c.call_id == call_id for c in await source.live_calls()):
                return source
        raise LiveCallError(f"no live call {call_id!r}")
