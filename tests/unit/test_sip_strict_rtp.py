"""pin_rtp_source: connects the call's RTP socket to its peer, and leaves no descriptor behind."""

import os
import socket
import tempfile

from voiceagent.bridges.sip.strict_rtp import pin_rtp_source


def _open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def test_pins_the_socket_and_leaks_no_descriptor() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger,
        tempfile.TemporaryFile() as not_a_socket,  # the process has files, pipes, epolls too
    ):
        assert not_a_socket.fileno() > 2
        rtp.bind(("127.0.0.1", 0))
        peer.bind(("127.0.0.1", 0))
        stranger.bind(("127.0.0.1", 0))
        before = _open_fds()
        for _ in range(20):  # a call each: a media process lives for thousands
            assert pin_rtp_source(rtp.getsockname(), peer.getsockname())
        assert _open_fds() == before
        assert rtp.getpeername() == peer.getsockname()
        # The kernel now drops what anyone but the peer sends.
        stranger.sendto(b"bleed", rtp.getsockname())
        peer.sendto(b"voice", rtp.getsockname())
        rtp.settimeout(2)
        assert rtp.recv(100) == b"voice"


def test_an_unknown_port_is_not_pinned_and_leaks_nothing() -> None:
    before = _open_fds()
    assert not pin_rtp_source(("127.0.0.1", 9), ("127.0.0.1", 10))
    assert _open_fds() == before
