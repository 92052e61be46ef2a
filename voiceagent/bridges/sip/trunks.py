"""SIP trunks from settings: where to register, which addresses to trust, which DID goes to which agent."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voiceagent.config import Settings
from voiceagent.errors import ConfigError

__all__ = ["SipTrunk", "agent_for_number", "load_trunks"]


class SipTrunk(BaseModel):
    """One trunk. ``registers`` trunks log in to ``host`` with digest auth; IP-authenticated ones
    (``registers = false``) are trusted by source address (``source_ips``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    host: str = Field(min_length=1, description="Registrar / proxy host[:port].")
    transport: Literal["udp", "tcp", "tls"] = "udp"
    username: str | None = None
    password: str | None = None
    realm: str = "*"
    registers: bool = False
    expires_s: int = Field(default=300, ge=60, le=86400)
    retry_s: int = Field(default=30, ge=5, description="First retry after a failed registration.")
    source_ips: list[str] = Field(default_factory=list)
    numbers: dict[str, str] = Field(default_factory=dict, description="Called number (DID) -> agent name.")
    default_agent: str | None = None
    caller_id: str | None = None

    @property
    def uri(self) -> str:
        suffix = "" if self.transport == "udp" else f";transport={self.transport}"
        scheme = "sips" if self.transport == "tls" else "sip"
        return f"{scheme}:{self.host}{suffix}"

    def target(self, number: str) -> str:
        """A SIP URI for ``number`` on this trunk (a full sip: URI is passed through)."""
        if number.startswith(("sip:", "sips:")):
            return number
        suffix = "" if self.transport == "udp" else f";transport={self.transport}"
        scheme = "sips" if self.transport == "tls" else "sip"
        return f"{scheme}:{number}@{self.host}{suffix}"


def load_trunks(settings: Settings) -> list[SipTrunk]:
    """The trunks of ``settings``; raises ConfigError naming the bad one."""
    trunks: list[SipTrunk] = []
    for index, raw in enumerate(settings.sip_trunks):
        try:
            trunk = SipTrunk.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"sip_trunks[{index}] is not a valid trunk: {exc}") from exc
        if trunk.registers and not (trunk.username and trunk.password):
            raise ConfigError(f"trunk {trunk.name!r} registers, so it needs a username and a password")
        trunks.append(trunk)
    names = [t.name for t in trunks]
    if len(set(names)) != len(names):
        raise ConfigError("sip_trunks: trunk names must be unique")
    return trunks


def agent_for_number(trunks: list[SipTrunk], number: str) -> str | None:
    """The agent a called number (DID) is routed to, or None for the default agent."""
    for trunk in trunks:
        if number in trunk.numbers:
            return trunk.numbers[number]
    for trunk in trunks:
        if trunk.default_agent:
            return trunk.default_agent
    return None
