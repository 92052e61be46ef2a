"""The pjsua2 Endpoint on its own thread (DESIGN §3): every call into pjsip runs there.

``uaConfig.threadCnt = 0``: pjsip starts no SIP worker threads; this thread polls
``libHandleEvents`` and, between polls, runs the work other threads hand it with :meth:`submit`.
A submit ends the poll at once: it sends a CRLF keep-alive (the double-CRLF ping of RFC 5626) to
the process's own UDP port, which pjsip drops without a word, so the poll can be long (fewer idle
wake-ups) while work handed over (answer, hang up, DTMF) still runs within a millisecond.
So SIP callbacks (Account/Call ``on*``) also run here, one at a time. Only the media clock thread
(the null sound device drives the conference bridge) calls into Python on its own: the audio
port callbacks, which only copy bytes (see :mod:`voiceagent.bridges.sip.port`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pjsua2 as pj  # type: ignore[import-untyped]  # SWIG bindings without type information

from voiceagent.bridges.sip.binding import PjBinding, binding
from voiceagent.bridges.sip.options import PJSUA_MAX_CALLS, SipMediaOptions
from voiceagent.errors import SipError

__all__ = ["PjsipThread", "destroy_on_pjsip_thread"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How long one libHandleEvents poll may block when no SIP traffic, timer or submitted work ends it
# sooner: housekeeping runs about this often. Each idle poll costs a wake-up of a process that may
# have no call (a 20 ms poll was 0.7 % of a core per idle process).
_POLL_MS = 100
# While shutting down: hang-ups' BYE transactions get a second of short polls.
_SHUTDOWN_POLL_MS = 20
# A SIP keep-alive: its arrival on the SIP port ends a poll, and pjsip ignores it.
_WAKE_DATAGRAM = b"\r\n\r\n"
# How often the owner's housekeeping runs (RTP source checks, RTP timeout).
_HOUSEKEEPING_S = 0.1
# Inside the media layer everything is 16 kHz; the bridge's clock runs at the same rate.
CLOCK_RATE = 16000
FRAME_MS = 20

_CODEC_IDS = {"PCMU": "PCMU/8000", "PCMA": "PCMA/8000", "G722": "G722/16000"}

# The thread that owns each pjsua2 copy's one Endpoint while it runs (pjsua is a singleton per
# copy, binding.py), by copy index.
_owners: dict[int, PjsipThread] = {}


def destroy_on_pjsip_thread(obj: object) -> None:
    """Called from a pjsua2 object's ``__del__``: off the pjsip thread, keep it alive until that
    thread drops it, so its C++ destructor (which calls into pjlib) runs there (DESIGN §3).

    The last reference normally goes on the pjsip thread, but one held by a cycle (a traceback's
    frames, a finished task) is freed by the cyclic garbage collector on whichever thread triggers
    it, such as an ``asyncio.to_thread`` worker: a destructor there aborted the process
    (``pj_thread_this``) or raced the pjsip thread. Python finalizes an object once, so the
    resurrected object is simply freed when the pjsip thread lets it go.
    """
    owner = _owners.get(getattr(type(obj), "binding_index", 0))
    if owner is not None and owner._thread.is_alive() and threading.current_thread() is not owner._thread:
        owner._graveyard.put(obj)


class PjsipThread:
    """Starts, owns and stops the Endpoint; ``setup(ep)`` and ``teardown()`` run on its thread."""

    def __init__(
        self,
        options: SipMediaOptions,
        *,
        setup: Callable[[pj.Endpoint], None],
        teardown: Callable[[], None],
        housekeeping: Callable[[], None] | None = None,
        pjsua: PjBinding | None = None,
    ) -> None:
        self.options = options
        self.binding = pjsua or binding(0)
        self.pj: Any = self.binding.pj  # the pjsua2 copy this thread's Endpoint comes from
        self.endpoint: pj.Endpoint | None = None
        self._setup = setup
        self._teardown = teardown
        self._housekeeping = housekeeping
        self._work: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = (
            queue.SimpleQueue()
        )
        # pjsua2 objects whose last reference went elsewhere; freed here (destroy_on_pjsip_thread).
        self._graveyard: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"pjsip-{options.sip_port}", daemon=True)
        host = options.bind_host
        if host in ("", "0.0.0.0", "::"):
            host = "::1" if host == "::" else "127.0.0.1"
        self._wake_to = (host, options.sip_port)
        self._wake_socket: socket.socket | None = None  # from start() to stop()

    # ---- other threads -------------------------------------------------------------------------

    def start(self, timeout_s: float = 15.0) -> None:
        """Start the thread and wait until SIP listens; raises SipError if pjsua2 cannot start."""
        family = socket.AF_INET6 if ":" in self._wake_to[0] else socket.AF_INET
        self._wake_socket = socket.socket(family, socket.SOCK_DGRAM)
        self._wake_socket.setblocking(False)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise SipError(f"pjsua2 did not start within {timeout_s} s")
        if self._error is not None:
            self._wake_socket.close()
            self._wake_socket = None
            raise SipError(
                f"pjsua2 cannot start on port {self.options.sip_port}: {self._error}"
            ) from self._error

    def register_current_thread(self, name: str) -> None:
        """Register the calling thread with pjlib (DESIGN §3). The event loop thread does not call
        into pjsip, but the last reference to a pjsua2 object may go there (a finished coroutine's
        frame, a traceback), and an unregistered thread running a pjsua2 destructor aborts."""
        ep = self.endpoint
        if ep is not None and not ep.libIsThreadRegistered():
            ep.libRegisterThread(name)

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``fn`` on the pjsip thread; its result or exception lands in the future."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._stopping.is_set():
            future.set_exception(SipError("the SIP endpoint is stopping"))
        else:
            self._work.put((fn, future))
            self._wake()
        return future

    def _wake(self) -> None:
        """End the pjsip thread's current poll (a lost datagram only delays work to the next poll)."""
        wake_socket = self._wake_socket
        if wake_socket is not None:
            with contextlib.suppress(OSError):  # closed meanwhile, or the port is gone
                wake_socket.sendto(_WAKE_DATAGRAM, self._wake_to)

    async def run(self, fn: Callable[[], T]) -> T:
        """Await ``fn`` run on the pjsip thread; pjsua2's errors come back as SipError."""
        try:
            return await asyncio.wrap_future(self.submit(fn))
        except self.pj.Error as exc:
            raise SipError(f"{exc.title}: {exc.reason} ({exc.status})") from exc

    def stop(self, timeout_s: float = 10.0) -> None:
        """Tear down (on the thread) and destroy the library; idempotent."""
        self._stopping.set()
        self._wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
        if not self._thread.is_alive() and self._wake_socket is not None:
            self._wake_socket.close()
            self._wake_socket = None

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping.is_set()

    # ---- the thread ----------------------------------------------------------------------------

    def _main(self) -> None:
        ep = self.pj.Endpoint()
        try:
            ep.libCreate()
            self.endpoint = ep
            _owners[self.binding.index] = self
            self._init(ep)
            self._setup(ep)
        except BaseException as exc:  # pj.Error or ours: reported to start(), never swallowed
            self._error = exc
            self._ready.set()
            self._destroy(ep)
            del ep  # see below
            return
        self._ready.set()
        last_tick = time.monotonic()
        while not self._stopping.is_set():
            ep.libHandleEvents(_POLL_MS)
            self._run_work()
            now = time.monotonic()
            if self._housekeeping is not None and now - last_tick >= _HOUSEKEEPING_S:
                last_tick = now
                self._guard(self._housekeeping)
        self._shutdown(ep)
        # Tracebacks handed to other threads keep this frame alive (through f_back); a live
        # Endpoint here would make the next Endpoint() in this process fail.
        del ep

    def _init(self, ep: pj.Endpoint) -> None:
        opt = self.options
        pj = self.pj
        cfg = pj.EpConfig()
        cfg.uaConfig.maxCalls = PJSUA_MAX_CALLS
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.userAgent = opt.user_agent
        cfg.logConfig.level = opt.log_level
        cfg.logConfig.consoleLevel = opt.log_level
        med = cfg.medConfig
        med.clockRate = CLOCK_RATE
        med.sndClockRate = CLOCK_RATE
        # The bridge's tick (how much audio each port callback carries) is separate from the RTP
        # packet time: at 40 ms every call's two Python callbacks and the loop's wake-up happen
        # half as often, and each wake-up's fixed cost is most of a call's CPU (docs/sip.md).
        med.audioFramePtime = opt.frame_ms
        med.ptime = FRAME_MS
        med.noVad = True  # no silence suppression: the media layer wants every 20 ms frame
        med.ecTailLen = 0  # echo is the media layer's business (EchoGuard)
        # 3-4 selects libresample's small filter for the 8 <-> 16 kHz conversion of G.711 calls
        # (the default 8, the large filter, was an eighth of a media process's CPU); telephone
        # audio has nothing above 3.4 kHz for the longer filter to keep.
        med.quality = 4
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()
        for kind in (pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_TCP):
            tc = pj.TransportConfig()
            tc.port = opt.sip_port
            tc.boundAddress = opt.bind_host
            if opt.public_host:
                tc.publicAddress = opt.public_host
            ep.transportCreate(kind, tc)
        if opt.tls_port is not None:
            tc = pj.TransportConfig()
            tc.port = opt.tls_port
            tc.boundAddress = opt.bind_host
            if opt.public_host:
                tc.publicAddress = opt.public_host
            tc.tlsConfig.certFile = opt.tls_cert
            tc.tlsConfig.privKeyFile = opt.tls_key
            tc.tlsConfig.method = pj.PJSIP_TLSV1_2_METHOD
            ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tc)
        self._set_codecs(ep)
        ep.libStart()

    def _set_codecs(self, ep: pj.Endpoint) -> None:
        wanted = [_CODEC_IDS[name.upper()] for name in self.options.codecs if name.upper() in _CODEC_IDS]
        if not wanted:
            raise SipError(
                f"no usable codec in {list(self.options.codecs)}; choose from {sorted(_CODEC_IDS)}"
            )
        for info in ep.codecEnum2():
            codec_id = info.codecId
            rank = next((i for i, w in enumerate(wanted) if codec_id.startswith(w)), None)
            ep.codecSetPriority(codec_id, 0 if rank is None else 255 - rank)

    def _bury(self) -> None:
        # empty() before get: this thread is the only consumer, and an idle poll (50 a second)
        # then costs no exception.
        graveyard = self._graveyard
        while not graveyard.empty():
            graveyard.get_nowait()  # dropped at once: freed on this thread

    def _run_work(self) -> None:
        self._bury()
        work = self._work
        while not work.empty():
            fn, future = work.get_nowait()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the awaiting thread
                future.set_exception(exc)

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            logger.exception("periodic SIP work failed")

    def _shutdown(self, ep: pj.Endpoint) -> None:
        self._run_work()
        with contextlib.suppress(self.pj.Error):
            ep.hangupAllCalls()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            ep.libHandleEvents(_SHUTDOWN_POLL_MS)
        self._guard(self._teardown)  # drop Call/Account/port objects before libDestroy
        while not self._work.empty():
            _, future = self._work.get_nowait()
            future.set_exception(SipError("the SIP endpoint stopped"))
        self._destroy(ep)

    def _destroy(self, ep: pj.Endpoint) -> None:
        self._bury()
        if _owners.get(self.binding.index) is self:
            del _owners[self.binding.index]
        try:
            ep.libDestroy()
        except self.pj.Error:
            logger.exception("libDestroy failed")
        self.endpoint = None
