"""SipMediaSupervisor: K media processes on K SIP ports, each restarted when it dies.

One pjsua2 endpoint holds at most 3 calls (the wheel's PJSUA_MAX_CALLS is 4, docs/sip.md); a
process runs ``sip_endpoints`` of them (group.py), and capacity comes from processes: the SIP
edge's dispatcher spreads INVITEs over ``sip:bind_host:port`` of every endpoint (see
:attr:`SipMediaSupervisor.sip_targets`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass, field

from voiceagent.bridges.sip.options import parse_port_range, split_port_range
from voiceagent.config import Settings

__all__ = ["MediaProcessSpec", "SipMediaSupervisor", "plan_processes"]

logger = logging.getLogger(__name__)

# A process that dies sooner than this after starting is restarted after a growing pause.
_HEALTHY_AFTER_S = 10.0
_MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class MediaProcessSpec:
    """Where one media process listens."""

    index: int
    sip_port: int
    rtp_ports: tuple[int, int]
    control_port: int
    endpoints: int = 1  # SIP endpoints in the process, on ports sip_port, sip_port + 1, ...

    @property
    def sip_ports(self) -> list[int]:
        return [self.sip_port + i for i in range(self.endpoints)]

    def argv(
        self, *, max_calls: int, engine: str, extra: tuple[str, ...] = (), call_log: bool = True
    ) -> list[str]:
        return [
            sys.executable, "-m", "voiceagent", *extra, "sip-media",
            "--sip-port", str(self.sip_port),
            "--rtp-port-range", f"{self.rtp_ports[0]}-{self.rtp_ports[1]}",
            "--max-calls", str(max_calls),
            "--control-port", str(self.control_port),
            "--endpoints", str(self.endpoints),
            "--engine", engine,
            *(() if call_log else ("--no-log",)),
        ]  # fmt: skip


def plan_processes(
    settings: Settings, count: int, *, control_base: int | None = None, endpoints: int | None = None
) -> list[MediaProcessSpec]:
    """Ports for ``count`` processes of ``endpoints`` SIP endpoints each (default
    ``sip_endpoints``): SIP ports from ``sip_port`` up, one per endpoint, the RTP range split
    evenly, control ports from ``control_base`` (default: sip_port + 1000), one per process."""
    endpoints = endpoints or settings.sip_endpoints
    ranges = split_port_range(parse_port_range(settings.sip_rtp_ports), count * endpoints)
    base = control_base or settings.sip_port + 1000
    return [
        MediaProcessSpec(
            i,
            settings.sip_port + i * endpoints,
            (ranges[i * endpoints][0], ranges[(i + 1) * endpoints - 1][1]),
            base + i,
            endpoints=endpoints,
        )
        for i in range(count)
    ]


@dataclass
class _Child:
    spec: MediaProcessSpec
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff_s: float = 1.0
    pids: list[int] = field(default_factory=list)


class SipMediaSupervisor:
    """Starts the processes of ``specs``, restarts each one that exits, stops them all on aclose."""

    def __init__(
        self,
        specs: list[MediaProcessSpec],
        *,
        max_calls: int = 3,
        engine: str = "cascade",
        cli_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        call_log: bool = True,
    ) -> None:
        self._children = [_Child(spec) for spec in specs]
        self._max_calls = max_calls
        self._engine = engine
        self._cli_args = cli_args
        self._env = env
        self._call_log = call_log
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def sip_targets(self) -> list[str]:
        return [f"127.0.0.1:{port}" for c in self._children for port in c.spec.sip_ports]

    @property
    def control_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{c.spec.control_port}" for c in self._children]

    def status(self) -> list[dict[str, object]]:
        return [
            {
                "sip_port": c.spec.sip_port,
                "pid": c.process.pid if c.process and c.process.returncode is None else None,
                "restarts": c.restarts,
            }
            for c in self._children
        ]

    async def start(self) -> None:
        for child in self._children:
            task = asyncio.create_task(self._keep(child), name=f"sip-media-{child.spec.index}")
            self._tasks.add(task)

    async def _keep(self, child: _Child) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            argv = child.spec.argv(
                max_calls=self._max_calls, engine=self._engine, extra=self._cli_args, call_log=self._call_log
            )
            child.process = await asyncio.create_subprocess_exec(*argv, env=self._env)
            child.pids.append(child.process.pid)
            child.started_at = loop.time()
            code = await child.process.wait()
            if self._stopping:
                return
            lived_s = loop.time() - child.started_at
            child.backoff_s = 1.0 if lived_s > _HEALTHY_AFTER_S else min(child.backoff_s * 2, _MAX_BACKOFF_S)
            child.restarts += 1
            logger.warning(
                "SIP media process on port %d exited with %s after %.1f s; restarting in %.0f s",
                child.spec.sip_port, code, lived_s, child.backoff_s,
            )  # fmt: skip
            await asyncio.sleep(child.backoff_s)

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """SIGTERM every process (they hang up their calls), SIGKILL what is left after ``timeout_s``."""
        self._stopping = True
        processes = [
            c.process for c in self._children if c.process is not None and c.process.returncode is None
        ]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
