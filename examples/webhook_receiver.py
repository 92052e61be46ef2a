"""A webhook receiver for voiceagent, and an agent tool endpoint, in the standard library plus
``standardwebhooks`` (``pip install standardwebhooks``).

    voiceagent webhooks add http://127.0.0.1:9000/hooks --events call.ended,turn.completed
    WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py --port 9000

What a production receiver must do, shown small:
- verify the signature over the exact body bytes before trusting anything (a 401 otherwise);
- answer 2xx quickly and do slow work later (voiceagent waits 15 s, then retries);
- de-duplicate by ``webhook-id``: delivery is at least once, so the same event can come twice;
- answer 410 Gone to make voiceagent stop sending to this URL (it disables the endpoint).

``POST /tools/orders`` is an agent tool: an intent with ``tool: orders`` sends the values it
captured (``{"arguments": {"order_number": "4411"}}``), signed the same way, and speaks the
fields of the JSON answered here through its reply template.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

ORDERS = {"4411": {"status": "has shipped", "eta": {"day": "Friday"}}}


class Handler(BaseHTTPRequestHandler):
    verifier: Webhook
    seen: ClassVar[set[str]] = set()  # in production: a table with a unique key, not memory

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        try:
            message: dict[str, Any] = self.verifier.verify(body, dict(self.headers))
        except WebhookVerificationError as exc:
            self._reply(401, {"error": str(exc)})
            return
        if self.path == "/tools/orders":
            order = ORDERS.get(str(message["arguments"].get("order_number")))
            self._reply(200 if order else 404, order or {"error": "no such order"})
            return
        msg_id = self.headers["webhook-id"]
        if msg_id in self.seen:
            self._reply(200, {"duplicate": True})
            return
        self.seen.add(msg_id)
        self._reply(204, None)
        print(f"{message['type']:<16} {msg_id}  {json.dumps(message['data'])[:160]}", flush=True)

    def _reply(self, status: int, payload: Any) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the print above says what matters


def main() -> None:
    parser = argparse.ArgumentParser(description="Receive voiceagent webhooks and tool calls.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    secret = os.environ.get("WEBHOOK_SECRET")
    if not secret:
        raise SystemExit("set WEBHOOK_SECRET to the whsec_... printed by `voiceagent webhooks add`")
    Handler.verifier = Webhook(secret)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on http://{args.host}:{args.port}/hooks (and /tools/orders)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
