"""EdgeConfig: what the SIP edge needs from Settings, checked once, picklable."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from voiceagent.config import Settings
from voiceagent.errors import SipEdgeError

__all__ = ["EdgeConfig", "Registration", "parse_hostport"]

# Hosts go verbatim into kamailio.cfg: refuse anything that could break out of the script's syntax.
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+$|^\[[0-9A-Fa-f:.]+\]$")
_USER_RE = re.compile(r"^[A-Za-z0-9._+\-!~*'()&=$,;?/]+$")


@dataclass(frozen=True, slots=True)
class Registration:
    """One trunk the edge registers to with ``uac`` (REGISTER refreshed before ``expires_s``)."""

    name: str  # the trunk's name: the user part of the Contact the trunk sends calls to
    username: str
    password: str
    registrar: str  # host:port
    transport: str = "udp"
    realm: str = ""  # empty: whatever realm the registrar challenges with
    expires_s: int = 600

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.name):
            raise SipEdgeError(f"trunk name must be letters, digits, '_', '.', '-': {self.name!r}")
        if not _USER_RE.match(self.username) or any(c in self.password for c in "'\"\\\r\n\t"):
            raise SipEdgeError(f"trunk {self.name!r}: unusable characters in its username or password")
        if self.transport not in ("udp", "tcp", "tls"):
            raise SipEdgeError(f"trunk {self.name!r}: transport must be udp, tcp or tls")
        if any(c in self.realm for c in "'\"\\\r\n\t:"):
            raise SipEdgeError(f"trunk {self.name!r}: unusable characters in its realm")
        parse_hostport(self.registrar, default_port=5060, what=f"trunk {self.name!r} host")


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """The SIP edge: where it listens, what it protects, where calls go."""

    host: str = "127.0.0.1"
    port: int = 5060
    advertise: str | None = None
    media: tuple[str, ...] = ()  # host:port of SIP media processes
    trusted: tuple[str, ...] = ()  # CIDR networks exempt from pike (trunks, media processes)
    registrations: tuple[Registration, ...] = ()
    tls_port: int = 5061
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_calls: int = 200
    pike_requests: int = 60  # per source per 2 s
    children: int = 2
    kamailio: str = "kamailio"
    # Back-end ping interval and the time a silent back-end gets before the next one is tried.
    ping_interval_s: int = 2
    backend_timeout_ms: int = 2000
    scanner_agents: tuple[str, ...] = field(
        default=(
            "friendly-scanner",
            "sipvicious",
            "sipcli",
            "sip-scan",
            "sipsak",
            "sundayddr",
            "iwar",
            "sivus",
            "smap",
            "vaxsipuseragent",
            "vaxipuseragent",
            "pplsip",
            "voip-scan",
        )
    )

    def __post_init__(self) -> None:
        _check_host(self.host, "sip_edge_host")
        if self.advertise is not None:
            parse_hostport(self.advertise, default_port=self.port, what="sip_edge_advertise")
        for address in self.media:
            parse_hostport(address, default_port=5060, what="sip_edge_media")
        for network in self.trusted:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise SipEdgeError(f"sip_edge_trusted: not an address or CIDR network: {network!r}") from exc
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SipEdgeError("sip_edge_tls_cert and sip_edge_tls_key go together: set both or neither")
        for agent in self.scanner_agents:
            if not re.fullmatch(r"[a-z0-9.\-]+", agent):
                raise SipEdgeError(f"scanner agent must be lower-case letters, digits, '.', '-': {agent!r}")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> EdgeConfig:
        """The edge part of ``settings``; ``overrides`` (field=value) win, e.g. ``port=0`` in tests.

        Trunks come from ``sip_trunks``: registering ones become ``uac`` registrations, the source
        addresses of IP-authenticated ones are exempt from pike. Without ``sip_edge_media`` the edge
        dispatches to the SIP endpoints of the media processes ``voiceagent sip-media-pool`` runs
        (``sip_port`` + i for each of sip_processes × sip_endpoints).
        """
        from voiceagent.bridges.sip.trunks import load_trunks  # no pjsua2 import behind it

        trunks = load_trunks(settings)
        media = tuple(settings.sip_edge_media) or tuple(
            f"{settings.sip_bind_host}:{settings.sip_port + i}"
            for i in range(settings.sip_processes * settings.sip_endpoints)
        )
        registrations = tuple(
            Registration(
                name=t.name,
                username=t.username or "",
                password=t.password or "",
                registrar=t.host,
                transport=t.transport,
                realm="" if t.realm == "*" else t.realm,
                expires_s=t.expires_s,
            )
            for t in trunks
            if t.registers
        )
        trusted = tuple(settings.sip_edge_trusted) + tuple(ip for t in trunks for ip in t.source_ips)
        values: dict[str, object] = {
            "host": settings.sip_edge_host,
            "port": settings.sip_edge_port,
            "advertise": settings.sip_edge_advertise,
            "media": media,
            "trusted": trusted,
            "registrations": registrations,
            "tls_port": settings.sip_edge_tls_port,
            "tls_cert": settings.sip_edge_tls_cert,
            "tls_key": settings.sip_edge_tls_key,
            # No more calls than the media processes can hold: a burst past that only hurts them.
            "max_calls": min(settings.sip_edge_max_calls, len(media) * settings.sip_max_calls),
            "pike_requests": settings.sip_edge_pike_requests,
            "children": settings.sip_edge_children,
            "kamailio": settings.sip_edge_kamailio,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _check_host(host: str, what: str) -> None:
    if not _HOST_RE.match(host):
        raise SipEdgeError(f"{what}: not a host name or IP address: {host!r}")


def parse_hostport(text: str, *, default_port: int, what: str = "address") -> tuple[str, int]:
    """``host[:port]`` (``[v6]:port`` for IPv6) as (host, port); a clean error for anything else."""
    host, sep, port_text = text.rpartition(":")
    if not sep or (host.count(":") and not host.startswith("[")):
        host, port_text = text, str(default_port)
    _check_host(host, what)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise SipEdgeError(f"{what}: bad port in {text!r}")
    return host, int(port_text)
