"""Free local ports for the test peers, each handed out once per test run.

"Free now" is not enough: a test asks for SIPp's media port, then for the media service's RTP
range, and only later do the processes bind them. Without a record, the second request can hand
out a port the first peer has not bound yet (SIPp then fails with EADDRINUSE on its RTP or video
socket). Ports stay reserved for a few minutes, far longer than any peer takes to start.
"""

from __future__ import annotations

import socket
import threading
import time

__all__ = ["free_port_block"]

_RESERVED_S = 300.0
_reserved: dict[int, float] = {}  # port -> when it was handed out
_lock = threading.Lock()


def _bindable(port: int, *, tcp: bool) -> bool:
    kinds = (socket.SOCK_DGRAM, socket.SOCK_STREAM) if tcp else (socket.SOCK_DGRAM,)
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_block(span: int = 1, *, tcp: bool = False, even: bool = False) -> int:
    """The first of ``span`` consecutive ports on 127.0.0.1 that are free now (UDP, and TCP too
    with ``tcp``) and were not handed out recently; ``even`` aligns it as RTP wants."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if even:
            base &= ~1
        if base + span > 65000:
            continue
        ports = range(base, base + span)
        with _lock:
            now = time.monotonic()
            for port in [p for p, at in _reserved.items() if now - at > _RESERVED_S]:
                del _reserved[port]
            if any(p in _reserved for p in ports):
                continue
            if all(_bindable(p, tcp=tcp) for p in ports):
                _reserved.update(dict.fromkeys(ports, now))
                return base
    raise RuntimeError(f"no {span} free consecutive ports")
