"""SipEdge: runs Kamailio as a supervised child — generated config, health pings, restarts, clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import tempfile
import time
from collections import deque
from pathlib import Path

from voiceagent.bridges.sip.edge.edge_config import EdgeConfig
from voiceagent.bridges.sip.edge.kamailio_cfg import EdgeFiles, render_dispatcher_list, write_edge_files
from voiceagent.bridges.sip.edge.sip_probe import options_ping
from voiceagent.config import Settings
from voiceagent.errors import SipEdgeError

__all__ = ["SipEdge", "start_sip_edge"]

logger = logging.getLogger(__name__)

_STOP_GRACE_S = 5.0
_MAX_BACKOFF_S = 30.0
_MAX_LOG_LINE = 2000


class SipEdge:
    """One Kamailio process in front of the SIP media processes, kept alive until :meth:`aclose`.

    ``await edge.start()`` writes the config into ``runtime_dir`` (a temp dir by default), starts
    Kamailio and returns once it answers an OPTIONS ping. A supervisor task then pings it every
    ``health_interval_s``; after ``health_failures`` silent pings in a row, or when the process
    exits, Kamailio is (re)started with a growing back-off. ``aclose()`` stops it: SIGTERM, then
    SIGKILL of its process group after a grace period.
    """

    def __init__(
        self,
        config: EdgeConfig,
        runtime_dir: Path | None = None,
        *,
        health_interval_s: float = 5.0,
        health_failures: int = 3,
        start_timeout_s: float = 10.0,
    ) -> None:
        if shutil.which(config.kamailio) is None:
            raise SipEdgeError(f"kamailio binary not found: {config.kamailio!r} (apt install kamailio)")
        self.config = config
        self._own_dir = runtime_dir is None
        self.runtime_dir = runtime_dir or Path(tempfile.mkdtemp(prefix="voiceagent-edge-"))
        self.files: EdgeFiles = write_edge_files(config, self.runtime_dir)
        self.health_interval_s = health_interval_s
        self.health_failures = health_failures
        self.start_timeout_s = start_timeout_s
        self.restarts = 0
        self.log_tail: deque[str] = deque(maxlen=80)
        self._process: asyncio.subprocess.Process | None = None
        self._log_task: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._stopping = False

    # -- public ---------------------------------------------------------------------------------

    @property
    def ping_host(self) -> str:
        """Where health pings go: the listen address, or loopback when it listens on every address."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.config.host, self.config.host.strip("[]"))

    @property
    def pid(self) -> int | None:
        """The main Kamailio process while it runs."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    async def start(self) -> None:
        """Start Kamailio and wait until it answers; raises :class:`SipEdgeError` if it never does."""
        if self._supervisor is not None:
            raise SipEdgeError("the SIP edge is already started")
        await self._spawn_until_healthy()
        self._supervisor = asyncio.create_task(self._supervise(), name="sip-edge-supervisor")

    async def ping(self, timeout_s: float = 1.0) -> bool:
        """True if the edge answers an OPTIONS ping with 200."""
        return await options_ping(self.ping_host, self.config.port, timeout_s=timeout_s) == 200

    async def rpc(self, *command: str, timeout_s: float = 5.0) -> str:
        """Run a Kamailio RPC command (e.g. ``dispatcher.list``) over its ctl socket; its output."""
        process = await asyncio.create_subprocess_exec(
            "kamcmd",
            "-s",
            f"unix:{self.files.ctl_socket}",
            *command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError as exc:
            process.kill()
            await process.wait()
            raise SipEdgeError(f"kamcmd {' '.join(command)} timed out") from exc
        text = output.decode(errors="replace")
        if process.returncode != 0 or text.startswith("error:"):
            raise SipEdgeError(f"kamcmd {' '.join(command)} failed: {text.strip()}")
        return text

    async def stats(self) -> dict[str, int]:
        """Kamailio's counters (``core:rcv_requests``, ``sl:4xx_replies``, ``pike:blocked_ips``, ...)."""
        counters: dict[str, int] = {}
        for line in (await self.rpc("stats.get_statistics", "all")).splitlines():
            name, sep, value = line.strip().partition(" = ")
            if sep and value.strip().lstrip("-").isdigit():
                counters[name] = int(value)
        return counters

    async def set_media(self, media: tuple[str, ...]) -> None:
        """Replace the media processes calls are spread over, without a restart."""
        config = dataclasses.replace(self.config, media=media)
        self.files.dispatcher_list.write_text(render_dispatcher_list(config), encoding="utf-8")
        self.config = config
        if self.pid is not None:
            await self.rpc("dispatcher.reload")

    async def aclose(self) -> None:
        """Stop supervising and stop Kamailio; removes the runtime dir if the edge made it."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._stop_process()
        if self._own_dir:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    async def __aenter__(self) -> SipEdge:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- process --------------------------------------------------------------------------------

    async def _spawn(self) -> None:
        files = self.files
        self._process = await asyncio.create_subprocess_exec(
            self.config.kamailio,
            "-DD",  # stay in the foreground, so the process we own is Kamailio's main process
            "-E",  # log to stderr, which we read
            "-f", str(files.cfg),
            "-Y", str(files.runtime_dir),
            "-P", str(files.pid_file),
            "-m", "64",
            "-M", "8",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group: a SIGKILL reaches every worker
        )  # fmt: skip
        self._log_task = asyncio.create_task(self._read_log(self._process), name="sip-edge-log")
        logger.info(
            "kamailio started (pid %d) on %s:%d", self._process.pid, self.config.host, self.config.port
        )

    async def _spawn_until_healthy(self) -> None:
        await self._spawn()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.returncode is not None:
                break
            if await self.ping(timeout_s=0.5):
                return
            await asyncio.sleep(0.1)
        await self._stop_process()
        tail = "\n".join(line for line in self.log_tail if " INFO: " not in line)[-2000:]
        raise SipEdgeError(f"kamailio did not come up on {self.config.host}:{self.config.port}:\n{tail}")

    async def _read_log(self, process: asyncio.subprocess.Process) -> None:
        # Read in chunks, not lines: Kamailio quotes whole hostile messages into one log line.
        assert process.stdout is not None
        pending = b""
        while chunk := await process.stdout.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            pending = pending[-_MAX_LOG_LINE:]
            for raw in lines:
                self._log_line(raw[:_MAX_LOG_LINE].decode(errors="replace").rstrip())
        if pending:
            self._log_line(pending.decode(errors="replace").rstrip())

    def _log_line(self, line: str) -> None:
        self.log_tail.append(line)
        # Hostile traffic makes Kamailio log ERRORs all day; only its own failures deserve a warning.
        if self._stopping:
            level = logging.DEBUG  # the TCP main process complains as its workers go: expected
        elif " CRITICAL: " in line or " ALERT: " in line:
            level = logging.WARNING
        elif " ERROR: " in line:
            level = logging.INFO
        else:
            level = logging.DEBUG
        logger.log(level, "kamailio: %s", line)

    async def _stop_process(self) -> None:
        process, self._process = self._process, None
        self._stopping = True
        if process is not None:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), _STOP_GRACE_S)
                except TimeoutError:
                    logger.warning(
                        "kamailio (pid %d) ignored SIGTERM; killing its process group", process.pid
                    )
            # Workers outlive a main process that was killed, and keep the SIP port: end the group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        if self._log_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._log_task
            self._log_task = None
        self._stopping = False

    # -- supervision ----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        backoff_s = 1.0
        while not self._closing:
            reason = await self._watch()
            logger.warning("kamailio %s; restarting in %.0f s", reason, backoff_s)
            await self._stop_process()
            await asyncio.sleep(backoff_s)
            try:
                await self._spawn_until_healthy()
            except SipEdgeError as exc:
                logger.error("kamailio restart failed: %s", exc)
                backoff_s = min(backoff_s * 2, _MAX_BACKOFF_S)
                continue
            self.restarts += 1
            backoff_s = 1.0

    async def _watch(self) -> str:
        """Return (with the reason) once the running Kamailio exited or stopped answering."""
        silent = 0
        while True:
            process = self._process
            if process is None:
                return "is not running"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(process.wait()), self.health_interval_s)
            if process.returncode is not None:
                return f"exited with status {process.returncode}"
            silent = 0 if await self.ping() else silent + 1
            if silent >= self.health_failures:
                return f"missed {silent} health pings"


async def start_sip_edge(settings: Settings) -> SipEdge | None:
    """A started edge for ``settings`` when ``sip_edge_enabled`` (the serve process owns it), else None."""
    if not settings.sip_edge_enabled:
        return None
    edge = SipEdge(EdgeConfig.from_settings(settings))
    await edge.start()
    return edge
