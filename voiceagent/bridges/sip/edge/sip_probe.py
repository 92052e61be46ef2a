"""A SIP OPTIONS ping over UDP: the edge's health check, from outside, through its real SIP port."""

from __future__ import annotations

import asyncio
import re
import uuid

__all__ = ["HEALTH_USER_AGENT", "options_ping"]

# The routing script exempts this agent from pike when it comes from the edge's own address, so a
# flood that gets localhost blocked does not make the supervisor restart a healthy edge.
HEALTH_USER_AGENT = "voiceagent-edge-health"

_STATUS_RE = re.compile(rb"^SIP/2\.0 (\d{3}) ")


class _Reply(asyncio.DatagramProtocol):
    def __init__(self, call_id: bytes) -> None:
        self.call_id = call_id
        self.status: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        match = _STATUS_RE.match(data)
        if match and self.call_id in data and not self.status.done():
            status = int(match[1])
            if status >= 200:  # a provisional reply is no answer to OPTIONS
                self.status.set_result(status)


def _options(host: str, port: int, local: tuple[str, int], call_id: str) -> bytes:
    target = f"[{host}]" if ":" in host else host
    local_host = f"[{local[0]}]" if ":" in local[0] else local[0]
    return (
        f"OPTIONS sip:{target}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local_host}:{local[1]};rport;branch=z9hG4bK{uuid.uuid4().hex}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:health@{local_host}>;tag={uuid.uuid4().hex[:12]}\r\n"
        f"To: <sip:{target}:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"User-Agent: {HEALTH_USER_AGENT}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def options_ping(host: str, port: int, *, timeout_s: float = 1.0, attempts: int = 2) -> int | None:
    """The final status code the SIP server at host:port gives an OPTIONS, or None if it stays silent."""
    loop = asyncio.get_running_loop()
    call_id = uuid.uuid4().hex
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Reply(call_id.encode()), remote_addr=(host, port)
    )
    try:
        local = transport.get_extra_info("sockname")
        message = _options(host, port, (str(local[0]), int(local[1])), call_id)
        for _ in range(attempts):  # UDP: one retransmission, as a SIP client would
            transport.sendto(message)
            try:
                return await asyncio.wait_for(asyncio.shield(protocol.status), timeout_s / attempts)
            except TimeoutError:
                continue
        return None
    finally:
        transport.close()
