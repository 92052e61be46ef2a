"""What one SIP media process is told: ports, addresses, limits, codecs (no pjsua2 import here)."""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field

from voiceagent.config import Settings
from voiceagent.errors import ConfigError

__all__ = [
    "PJSUA_MAX_CALLS",
    "SipMediaOptions",
    "endpoint_options",
    "parse_networks",
    "parse_port_range",
    "source_allowed",
    "split_port_range",
]

# The pjsua2-python wheel is compiled with PJSUA_MAX_CALLS = 4 and pjsua silently clamps
# uaConfig.maxCalls to it (docs/sip.md, "maxCalls root cause"). One slot is kept free so that a
# call past our limit reaches onIncomingCall and is refused with a Reason, not by pjsua's bare 486.
PJSUA_MAX_CALLS = 4

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_port_range(text: str) -> tuple[int, int]:
    """``"20000-20999"`` -> (20000, 20999); raises ConfigError."""
    try:
        first, last = (int(part) for part in text.split("-", 1))
    except ValueError as exc:
        raise ConfigError(f"an RTP port range is written A-B, got {text!r}") from exc
    if not 1024 <= first < last <= 65535 or last - first < 3:
        raise ConfigError(f"RTP port range {text!r} must be 1024 <= A < B <= 65535 with room for a call")
    return first, last


def split_port_range(ports: tuple[int, int], count: int) -> list[tuple[int, int]]:
    """``count`` equal slices of an RTP port range, each starting on an even port (RTP is even,
    its RTCP the odd port above); raises ConfigError if a slice has no room for a call."""
    first, last = ports
    share = ((last - first + 1) // count) & ~1
    if share < 4:
        raise ConfigError(f"RTP ports {first}-{last} are too few for {count} slices")
    return [(first + i * share, first + (i + 1) * share - 1) for i in range(count)]


def parse_networks(sources: list[str] | tuple[str, ...]) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(s.strip(), strict=False) for s in sources if s.strip())
    except ValueError as exc:
        raise ConfigError(f"SIP allowed sources must be IPs or CIDRs: {exc}") from exc


def source_allowed(address: str, networks: tuple[Network, ...]) -> bool:
    """Is ``address`` ("ip:port", "[v6]:port" or a bare ip) inside one of ``networks``?"""
    host = address.strip()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip in net for net in networks)


@dataclass(frozen=True)
class SipMediaOptions:
    """One media process: SIP on ``bind_host:sip_port`` (UDP+TCP), RTP from ``rtp_ports``."""

    sip_port: int
    rtp_ports: tuple[int, int]
    max_calls: int = 3
    bind_host: str = "127.0.0.1"
    public_host: str | None = None
    allowed: tuple[Network, ...] = field(default_factory=tuple)
    codecs: tuple[str, ...] = ("PCMU", "PCMA", "G722")
    rtp_timeout_s: float = 30.0
    strict_rtp: bool = True
    # Audio per clock tick between the conference bridge and the media layer (RTP stays 20 ms).
    frame_ms: int = 20
    tls_port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    outbound_proxy: str | None = None
    user_agent: str = "voiceagent"
    log_level: int = 1

    def __post_init__(self) -> None:
        if self.frame_ms not in (20, 40):
            raise ConfigError(f"sip_frame_ms must be 20 or 40, got {self.frame_ms}")
        if self.tls_port is not None and not (self.tls_cert and self.tls_key):
            raise ConfigError("SIP over TLS needs sip_tls_cert and sip_tls_key")
        if not 1 <= self.max_calls <= PJSUA_MAX_CALLS - 1:
            raise ConfigError(
                f"max_calls must be 1..{PJSUA_MAX_CALLS - 1} per media process (the pjsua2 wheel is built"
                f" with PJSUA_MAX_CALLS={PJSUA_MAX_CALLS}); run more processes for more calls"
            )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        sip_port: int | None = None,
        rtp_ports: tuple[int, int] | None = None,
        max_calls: int | None = None,
        allow: list[str] | tuple[str, ...] = (),
    ) -> SipMediaOptions:
        from voiceagent.bridges.sip.trunks import load_trunks

        trunk_ips = [ip for trunk in load_trunks(settings) for ip in trunk.source_ips]
        return cls(
            sip_port=sip_port or settings.sip_port,
            rtp_ports=rtp_ports or parse_port_range(settings.sip_rtp_ports),
            max_calls=max_calls or settings.sip_max_calls,
            bind_host=settings.sip_bind_host,
            public_host=settings.sip_public_host,
            allowed=parse_networks([*settings.sip_allowed_sources, *allow, *trunk_ips]),
            codecs=tuple(settings.sip_codecs),
            rtp_timeout_s=settings.sip_rtp_timeout_s,
            strict_rtp=settings.sip_strict_rtp,
            frame_ms=settings.sip_frame_ms,
            tls_port=settings.sip_tls_port,
            tls_cert=str(settings.sip_tls_cert) if settings.sip_tls_cert else None,
            tls_key=str(settings.sip_tls_key) if settings.sip_tls_key else None,
            outbound_proxy=settings.sip_outbound_proxy,
        )


def endpoint_options(options: SipMediaOptions, endpoints: int) -> list[SipMediaOptions]:
    """The options of each of ``endpoints`` endpoints: SIP ports ``sip_port`` and up (and TLS
    ports likewise), the RTP range split evenly; raises ConfigError if it is too small."""
    ranges = split_port_range(options.rtp_ports, endpoints)
    return [
        dataclasses.replace(
            options,
            sip_port=options.sip_port + i,
            rtp_ports=ranges[i],
            tls_port=None if options.tls_port is None else options.tls_port + i,
        )
        for i in range(endpoints)
    ]
