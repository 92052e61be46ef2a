"""The supervised Kamailio: restarts, clean stop, start errors, TLS, trunk registration, pike."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import sys
import time
import uuid
from pathlib import Path

import pytest

from voiceagent.bridges.sip.edge import EdgeConfig, Registration, SipEdge
from voiceagent.errors import SipEdgeError

from .sip_edge_support import free_port, send_raw

pytestmark = pytest.mark.skipif(shutil.which("kamailio") is None, reason="kamailio not installed")


def _group_alive(pgid: int) -> bool:
    """Any live (non-zombie) process left in the process group ``pgid``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _options(port: int, user: str = "ping") -> bytes:
    call_id = uuid.uuid4().hex
    return (
        f"OPTIONS sip:{user}@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\n"
        f"From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def test_a_killed_edge_is_restarted_and_a_closed_one_leaves_nothing_behind() -> None:
    edge = SipEdge(EdgeConfig(port=free_port()), health_interval_s=0.3)
    await edge.start()
    first = edge.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    for _ in range(100):
        if edge.restarts == 1:
            break
        await asyncio.sleep(0.1)
    assert edge.restarts == 1
    assert not _group_alive(first)  # the old workers went with their main process
    assert await edge.ping()
    second = edge.pid
    assert second is not None
    runtime_dir = edge.runtime_dir
    await edge.aclose()
    assert not _group_alive(second)
    assert not runtime_dir.exists()
    assert (
        await asyncio.to_thread(send_raw, edge.config.port, _options(edge.config.port), timeout_s=0.3) is None
    )


async def test_a_hung_edge_is_killed_and_restarted() -> None:
    """Alive but silent (every process stopped): the health pings notice, not the exit status."""
    async with SipEdge(EdgeConfig(port=free_port()), health_interval_s=0.3, health_failures=2) as edge:
        hung = edge.pid
        assert hung is not None
        os.killpg(hung, signal.SIGSTOP)
        for _ in range(150):
            if edge.restarts == 1:
                break
            await asyncio.sleep(0.1)
        assert edge.restarts == 1
        assert edge.pid != hung
        assert not _group_alive(hung)
        assert await edge.ping()


async def test_a_port_in_use_is_a_clean_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        edge = SipEdge(EdgeConfig(port=taken.getsockname()[1]), start_timeout_s=5)
        with pytest.raises(SipEdgeError, match="did not come up"):
            await edge.start()
        await edge.aclose()


async def test_missing_kamailio_binary_is_a_clean_error() -> None:
    with pytest.raises(SipEdgeError, match="not found"):
        SipEdge(EdgeConfig(kamailio="/nonexistent/kamailio"))


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _tls_options(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="edge.test") as tls,
    ):
        local = tls.getsockname()
        call_id = uuid.uuid4().hex
        tls.sendall(
            (
                f"OPTIONS sip:127.0.0.1:{port};transport=tls SIP/2.0\r\n"
                f"Via: SIP/2.0/TLS 127.0.0.1:{local[1]};rport;branch=z9hG4bK{call_id}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
                f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )
        return tls.recv(4096)


async def test_tls_uses_the_configured_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    config = EdgeConfig(port=free_port(), tls_port=free_port(), tls_cert=cert, tls_key=key)
    async with SipEdge(config) as edge:
        reply = await asyncio.to_thread(_tls_options, edge.config.tls_port)
    assert reply.startswith(b"SIP/2.0 200 OK")


def _challenge(request: bytes) -> bytes:
    """A 401 for ``request`` with a digest challenge (realm trunk.test)."""
    lines = request.split(b"\r\n")
    keep = [
        ln for ln in lines if ln.split(b":", 1)[0].lower() in (b"via", b"from", b"to", b"call-id", b"cseq")
    ]
    return (
        b"SIP/2.0 401 Unauthorized\r\n" + b"\r\n".join(keep) + b"\r\n"
        b'WWW-Authenticate: Digest realm="trunk.test", nonce="n0nce", algorithm=MD5\r\n'
        b"Content-Length: 0\r\n\r\n"
    )


def _digest_ok(request: bytes, *, username: str, password: str, realm: str) -> bool:
    """True if the request's Authorization is the RFC 2617 digest of ``password``."""
    match = re.search(rb"(?im)^Authorization:\s*Digest (.*)$", request)
    if match is None:
        return False
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', match[1].decode()))
    ha1 = hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:{params['uri']}".encode()).hexdigest()
    if "qop" in params:
        tail = f"{params['nonce']}:{params['nc']}:{params['cnonce']}:{params['qop']}:{ha2}"
    else:
        tail = f"{params['nonce']}:{ha2}"
    expected = hashlib.md5(f"{ha1}:{tail}".encode()).hexdigest()
    return params.get("username") == username and params.get("response") == expected


async def test_the_edge_registers_to_a_trunk() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as registrar:
        registrar.bind(("127.0.0.1", 0))
        registrar.settimeout(15)
        trunk = Registration("carrier", "alice", "s3cret", f"127.0.0.1:{registrar.getsockname()[1]}")
        async with SipEdge(EdgeConfig(port=free_port(), registrations=(trunk,))) as edge:
            data, peer = await asyncio.to_thread(registrar.recvfrom, 65535)
            assert data.startswith(b"REGISTER sip:127.0.0.1 SIP/2.0")
            assert b"To: <sip:alice@127.0.0.1>" in data
            assert f"Contact: <sip:carrier@127.0.0.1:{edge.config.port}>".encode() in data
            # Challenge it: the answer must be a digest over the trunk's password.
            await asyncio.to_thread(registrar.sendto, _challenge(data), peer)
            answer, _ = await asyncio.to_thread(registrar.recvfrom, 65535)
            assert answer.startswith(b"REGISTER ")
            assert _digest_ok(answer, username="alice", password="s3cret", realm="trunk.test")


async def test_pike_blocks_a_flood_but_not_the_health_check() -> None:
    config = EdgeConfig(port=free_port(), pike_requests=20, trusted=("127.0.0.3/32",))
    async with SipEdge(config, health_interval_s=0.5) as edge:
        port = edge.config.port

        def flood(source: str = "127.0.0.2") -> int:
            answered = 0
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # hold every reply
                sock.bind((source, 0))  # a flooder of its own: 127.0.0.1 stays unblocked
                sock.settimeout(0.5)
                for n in range(300):
                    sock.sendto(_options(port), ("127.0.0.1", port))
                    if n % 5 == 4:
                        time.sleep(0.01)  # ~500/s: a flood, not a socket buffer overrun
                try:
                    while sock.recv(4096):
                        answered += 1
                except TimeoutError:
                    pass
            return answered

        answered = await asyncio.to_thread(flood)
        assert answered < 100
        # A trusted trunk sending as much is never blocked.
        assert await asyncio.to_thread(flood, "127.0.0.3") == 300
        stats = await edge.stats()
        assert stats["pike:blocked_ips"] >= 1
        assert await edge.ping()
        await asyncio.sleep(1.2)
        assert edge.restarts == 0


async def test_the_sip_edge_command_serves_until_sigterm() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voiceagent", "sip-edge", "--port", str(port), "--media", "127.0.0.1:5070",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        ready = await asyncio.wait_for(process.stderr.readline(), 30)
        assert f"SIP edge on 127.0.0.1:{port}" in ready.decode()
        reply = await asyncio.to_thread(send_raw, port, _options(port))
        assert reply is not None
        assert reply.startswith(b"SIP/2.0 200 OK")
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    assert await asyncio.to_thread(send_raw, port, _options(port), timeout_s=0.3) is None


async def test_the_api_process_owns_the_edge_when_enabled(tmp_path: Path) -> None:
    from voiceagent.api import create_app
    from voiceagent.config import load_settings

    port = free_port()
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}",
        sip_edge_enabled=True,
        sip_edge_port=port,
        sip_edge_media=["127.0.0.1:5070"],
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert app.state.sip_edge is not None
        reply = await asyncio.to_thread(send_raw, port, _options(port))
        assert reply is not None
        assert reply.startswith(b"SIP/2.0 200 OK")
    assert await asyncio.to_thread(send_raw, port, _options(port), timeout_s=0.3) is None
