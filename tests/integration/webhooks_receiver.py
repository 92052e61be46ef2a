"""A real webhook receiver for tests: uvicorn on a free loopback port, verifying every message with
the ``standardwebhooks`` library (not our code) and de-duplicating by ``webhook-id``.

Its behaviour is a script: ``respond(n)`` gives the status code for the n-th request (1-based),
``delay_s`` holds every answer back (to make the sender time out), and ``stop()``/``start()``
take it off the network and back on the same port (connection refused meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    msg_id: str
    body: dict[str, Any]
    headers: dict[str, str]
    verified_with: list[int]  # indexes of the receiver's secrets that verified this message


@dataclass
class Receiver:
    secrets: list[str]
    respond: Callable[[int], int] = lambda n: 200
    delay_s: float = 0.0
    requests: int = 0
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    @property
    def unique(self) -> dict[str, Received]:
        """Verified messages, first copy of each ``webhook-id``."""
        out: dict[str, Received] = {}
        for r in self.received:
            if r.verified_with:
                out.setdefault(r.msg_id, r)
        return out

    def reserve_port(self) -> int:
        """Pick a free port without listening on it (the receiver starts 'down')."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        return self.port

    async def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app, log_config=None, access_log=False, lifespan="off", interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._server = None
        self._task = None

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks).decode()
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests += 1
        n = self.requests
        verified = []
        for i, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified.append(i)
        self.received.append(Received(headers.get("webhook-id", ""), json.loads(body), headers, verified))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.respond(n) if verified else 401
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
