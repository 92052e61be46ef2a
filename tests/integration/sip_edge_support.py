"""Test peers for the SIP edge: free ports, SIPp back-ends (uas with RTP echo) and SIPp callers (uac).

SIPp plays both sides: a uas scenario that answers the edge's OPTIONS probes and INVITEs (echoing
RTP with ``-rtp_echo``), and a uac scenario that follows the edge's Record-Route (``rrs``) so ACK and
BYE go through the edge, playing G.711 from the pcap the Debian package ships.
"""

from __future__ import annotations

import contextlib
import csv
import re
import shutil
import socket
import subprocess
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .ports import free_port_block

PCAP_DIR = Path("/usr/share/sip-tester")

UAS_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="voiceagent edge back-end">
  <recv request="OPTIONS" optional="true" next="options"/>
  <recv request="INVITE"/>
  <send><![CDATA[

SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]be[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:backend@[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]be[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:backend@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=backend 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000

]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send next="done"><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="options"/>
  <send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]opt[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <label id="done"/>
</scenario>
"""

UAC_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="voiceagent edge caller">
  <send retrans="500"><![CDATA[

INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: caller <sip:caller@[local_ip]:[local_port]>;tag=[pid]c[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
User-Agent: voiceagent-test-caller
Content-Type: application/sdp
Content-Length: [len]

v=0
o=caller 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[local_ip_type] [local_ip]
t=0 0
m=audio [auto_media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000

]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[

ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: caller <sip:caller@[local_ip]:[local_port]>;tag=[pid]c[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  @@MEDIA@@
  <send retrans="500"><![CDATA[

BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: caller <sip:caller@[local_ip]:[local_port]>;tag=[pid]c[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def free_port() -> int:
    """A port free for both UDP and TCP (Kamailio and SIPp bind both)."""
    return free_port_block(tcp=True)


_PCAP_MS = 4720  # g711a.pcap: 236 packets of 20 ms


def write_scenarios(directory: Path, *, pause_ms: int = 0, audio: bool = False) -> tuple[Path, Path]:
    """Write the uas and uac scenarios; the uac holds each call ``pause_ms``, with audio replaying
    the Debian G.711 pcap back to back for that long when ``audio``."""
    media = ""
    if audio:
        (directory / "pcap").mkdir(exist_ok=True)
        target = directory / "pcap" / "g711a.pcap"
        if not target.exists():
            shutil.copy(PCAP_DIR / "g711a.pcap", target)
        left_ms = max(pause_ms, _PCAP_MS)
        while left_ms > 0:
            media += '<nop><action><exec play_pcap_audio="pcap/g711a.pcap"/></action></nop>\n'
            media += f'<pause milliseconds="{min(left_ms, _PCAP_MS)}"/>\n'
            left_ms -= _PCAP_MS
    elif pause_ms:
        media += f'<pause milliseconds="{pause_ms}"/>\n'
    uas = directory / "uas.xml"
    uac = directory / "uac.xml"
    uas.write_text(UAS_SCENARIO, encoding="utf-8")
    uac.write_text(UAC_SCENARIO.replace("@@MEDIA@@", media), encoding="utf-8")
    return uas, uac


@dataclass
class SippUas:
    """A SIPp back-end (uas) on 127.0.0.1:port with RTP echo, logging the messages it receives."""

    directory: Path
    port: int
    media_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def message_log(self) -> Path:
        return self.directory / f"uas-{self.port}-messages.log"

    def start(self, scenario: Path) -> SippUas:
        self.process = subprocess.Popen(
            [
                "sipp",
                "-sf",
                str(scenario),
                "-i",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-mi",
                "127.0.0.1",
                "-mp",
                str(self.media_port),
                "-rtp_echo",
                "-trace_msg",
                "-message_file",
                str(self.message_log),
                "-nostdin",
                "-max_socket",
                "2048",
            ],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)
        if self.process.poll() is not None:
            raise RuntimeError(f"sipp uas on port {self.port} exited at once: {self.process.returncode}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def received(self, method: str) -> int:
        """How many ``method`` requests reached this back-end."""
        if not self.message_log.exists():
            return 0
        prefix = f"{method} sip:"
        return sum(
            1 for line in self.message_log.read_text(errors="replace").splitlines() if line.startswith(prefix)
        )


@dataclass
class UacResult:
    """What a SIPp caller run reports."""

    returncode: int
    successful: int
    failed: int
    response_time_ms: float | None
    stats: dict[str, str]
    output: str


def run_uac(
    directory: Path,
    scenario: Path,
    edge_port: int,
    *,
    calls: int,
    rate_per_s: float = 20.0,
    limit: int | None = None,
    timeout_s: float = 60.0,
    extra: tuple[str, ...] = (),
) -> UacResult:
    """Place ``calls`` calls through the edge with SIPp and read its final statistics."""
    stat_file = directory / f"uac-{time.monotonic_ns()}.csv"
    command = [
        "sipp", f"127.0.0.1:{edge_port}", "-sf", str(scenario), "-i", "127.0.0.1", "-p", "0",
        "-m", str(calls), "-r", str(rate_per_s), "-l", str(limit or calls), "-s", "agent",
        "-trace_stat", "-stf", str(stat_file), "-fd", "1", "-nostdin",
        "-timeout", f"{int(timeout_s)}s", "-max_socket", "2048",
        "-mp", str(free_port_block(4, even=True)), *extra,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=directory, capture_output=True, timeout=timeout_s + 15, check=False)
    stats: dict[str, str] = {}
    if stat_file.exists():
        rows = list(csv.reader(stat_file.read_text().splitlines(), delimiter=";"))
        if len(rows) >= 2:
            stats = dict(zip(rows[0], rows[-1], strict=False))
    response = stats.get("ResponseTime1(C)")
    return UacResult(
        returncode=done.returncode,
        successful=int(stats.get("SuccessfulCall(C)", "0") or 0),
        failed=int(stats.get("FailedCall(C)", "0") or 0),
        response_time_ms=_hms_to_ms(response) if response else None,
        stats=stats,
        output=(done.stdout + done.stderr).decode(errors="replace")[-3000:],
    )


def _hms_to_ms(text: str) -> float:
    """SIPp's 'HH:MM:SS:mmm' (or with microseconds) as milliseconds."""
    parts = text.split(":")
    h, m, s = (float(p) for p in parts[:3])
    fraction = parts[3] if len(parts) > 3 else "0"
    return ((h * 60 + m) * 60 + s) * 1000 + float(fraction) / (10 ** max(len(fraction) - 3, 0))


class UdpBackend:
    """A minimal SIP back-end: 200 to OPTIONS, 486 (or ``invite_status``) to INVITE; keeps every INVITE.

    It stands where a pjsua2 media process would, for suites of hostile messages: what it receives
    is exactly what the edge let through.
    """

    def __init__(self, invite_status: bytes = b"486 Busy Here") -> None:
        self.invite_status = invite_status
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.invites: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="udp-backend", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> UdpBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            head, _, _ = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method = lines[0].split(b" ", 1)[0]
            if method == b"INVITE":
                self.invites.append(data)
                status = self.invite_status
            elif method == b"OPTIONS":
                status = b"200 OK"
            elif method == b"ACK" or lines[0].startswith(b"SIP/2.0"):
                continue
            else:
                status = b"200 OK"
            copied = [ln for ln in lines[1:] if ln.split(b":", 1)[0].strip().lower() in _ECHOED]
            to_tag = [
                ln + b";tag=be1" if ln.lower().startswith(b"to:") and b"tag=" not in ln else ln
                for ln in copied
            ]
            reply = b"SIP/2.0 " + status + b"\r\n" + b"\r\n".join(to_tag) + b"\r\nContent-Length: 0\r\n\r\n"
            self.sock.sendto(reply, peer)


_ECHOED = {b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq"}


def send_raw(port: int, message: bytes, *, timeout_s: float = 0.5, source: str = "127.0.0.1") -> bytes | None:
    """Send one datagram to the edge and return the first final reply (None if it stays silent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(timeout_s)
        sock.sendto(message, ("127.0.0.1", port))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65535)
            except TimeoutError:
                return None
            if not data.startswith(b"SIP/2.0 1"):
                return data
        return None


def split_protos_case(data: bytes) -> list[bytes]:
    """A PROTOS case file holds messages as ``<length> <bytes>``: the test INVITE, then its teardown."""
    messages, at = [], 0
    while at < len(data):
        space = data.index(b" ", at)
        length = int(data[at:space])
        messages.append(data[space + 1 : space + 1 + length])
        at = space + 1 + length
    return messages


def fill_protos_case(template: bytes, *, edge_port: int, local_port: int, case: str) -> bytes:
    """Fill a PROTOS c07-sip message's placeholders, as its own test driver did."""
    message = (
        template.replace(b"<To>", f"agent@127.0.0.1:{edge_port}".encode())
        .replace(b"<From>", b"protos@127.0.0.1")
        .replace(b"<From-Address>", b"127.0.0.1")
        .replace(b"<From-IP>", b"127.0.0.1")
        .replace(b"<Local-Port>", str(local_port).encode())
        .replace(b"<Branch-ID>", f"x{case}".encode())
        .replace(b"<Call-ID>", f"protos-{case}".encode())
        .replace(b"<CSeq>", b"1")
        .replace(b"<Teardown-Method>", b"CANCEL")
    )
    _, sep, body = message.partition(b"\r\n\r\n")
    return message.replace(b"<Content-Length>", str(len(body) if sep else 0).encode())


SUITES = Path("/work/shared/testdata/sip")
_CASE_RE = re.compile(rb"protos-(\d{7})|z9hG4bK\d*x(\d{7})")


def protos_cases() -> list[tuple[str, list[bytes]]]:
    """Every PROTOS c07-sip case (name, [test message, teardown]), read from the zip in place."""
    with zipfile.ZipFile(SUITES / "protos-c07-sip-r2-testcases.zip") as archive:
        names = sorted(n for n in archive.namelist() if n.startswith("testcases/") and not n.endswith("/"))
        return [(n.rsplit("/", 1)[1], split_protos_case(archive.read(n))) for n in names]


def rfc4475_messages() -> list[tuple[str, list[bytes]]]:
    """Every RFC 4475 torture message, byte for byte."""
    return [(p.stem, [p.read_bytes()]) for p in sorted((SUITES / "rfc4475").glob("*.dat"))]


@dataclass
class SuiteRun:
    """What came back when a suite was sent to the edge."""

    sent: int
    replies: dict[str, int]  # case -> final status the sender received (first one)
    unmatched_replies: int = 0  # final replies that name no case (torture messages keep their ids)

    def count(self, status_class: int) -> int:
        return sum(1 for status in self.replies.values() if status // 100 == status_class)


def blast(messages: list[tuple[str, list[bytes]]], edge_port: int, *, rate_per_s: float = 500.0) -> SuiteRun:
    """Send every message from one UDP socket at ``rate_per_s``; collect replies for a second after.

    PROTOS templates are filled with this socket's port, so the edge's replies come back to it and
    carry the case number (Call-ID / branch); torture messages are sent as they are.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    local_port = int(sock.getsockname()[1])
    replies: dict[str, int] = {}
    unmatched = 0

    def drain() -> None:
        nonlocal unmatched
        while True:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                return
            match = _STATUS_RE.match(data)
            case = _CASE_RE.search(data)
            # The teardown's (CANCEL's) own reply does not count: only the test message's does.
            if not match or int(match[1]) < 200 or _CANCEL_RE.search(data):
                continue
            if case:
                replies.setdefault((case[1] or case[2]).decode(), int(match[1]))
            else:
                unmatched += 1

    interval_s = 1.0 / rate_per_s
    next_at = time.monotonic()
    try:
        for name, templates in messages:
            for template in templates:
                message = fill_protos_case(template, edge_port=edge_port, local_port=local_port, case=name)
                with contextlib.suppress(OSError):  # a case larger than a datagram may be refused locally
                    sock.sendto(message, ("127.0.0.1", edge_port))
            next_at += interval_s
            drain()
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            drain()
            time.sleep(0.02)
    finally:
        sock.close()
    return SuiteRun(sent=len(messages), replies=replies, unmatched_replies=unmatched)


_STATUS_RE = re.compile(rb"^SIP/2\.0 (\d{3}) ")
_CANCEL_RE = re.compile(rb"(?im)^CSeq:\s*\d+\s+CANCEL")
