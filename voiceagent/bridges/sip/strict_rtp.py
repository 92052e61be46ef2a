"""Strict RTP: only the negotiated peer's packets reach a call.

pjmedia plays RTP from any source and, after 10 packets from a new one, even starts sending to it
(NAT latching), and pjsua2 offers no switch to turn that off. A UDP socket that is ``connect()``-ed
to the peer makes the kernel drop datagrams from anyone else, while pjmedia's ``sendto`` to the
peer works as before. The call's RTP socket is found by its local port among this process's file
descriptors (Linux ``/proc/self/fd``); callers behind NAT that send from another address than
their SDP says need ``sip_strict_rtp = false``.
"""

from __future__ import annotations

import os
import socket

__all__ = ["pin_rtp_source"]

_FD_DIR = "/proc/self/fd"


def pin_rtp_source(local: tuple[str, int], peer: tuple[str, int]) -> bool:
    """Connect the UDP socket bound to ``local`` to ``peer``; False if no such socket was found."""
    try:
        names = os.listdir(_FD_DIR)
    except OSError:
        return False
    for name in names:
        try:
            if not os.readlink(f"{_FD_DIR}/{name}").startswith("socket:"):
                continue
            duplicate = os.dup(int(name))
        except (OSError, ValueError):
            continue  # gone meanwhile
        try:
            sock = socket.socket(fileno=duplicate)
        except OSError:
            # Not a socket after all: the duplicate must not outlive this call. (Leaking it once
            # per call per descriptor ran a media process past FD_SETSIZE, where pjsip's select
            # ioqueue refuses new RTP sockets with PJ_ETOOBIG.)
            os.close(duplicate)
            continue
        with sock:  # closes the duplicate only; pjmedia's descriptor stays open
            if sock.type != socket.SOCK_DGRAM:
                continue
            try:
                bound = sock.getsockname()
            except OSError:
                continue
            if bound[1] == local[1] and bound[0] in (local[0], "0.0.0.0"):
                sock.connect(peer)
                return True
    return False


def parse_address(text: str) -> tuple[str, int] | None:
    """``"1.2.3.4:5000"`` -> ("1.2.3.4", 5000); None for anything else (IPv6 is not pinned)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or ":" in host:
        return None
    return host, int(port)
