"""examples/webhook_receiver.py as an integrator would run it: a separate process that verifies,
de-duplicates and answers tool calls."""

import asyncio
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from voiceagent.agents import AgentDefinition
from voiceagent.agents.tools import ToolRunner
from voiceagent.cli import cli
from voiceagent.config import load_settings
from voiceagent.store import CallEnded, CallStarted, create_engine, session_factory
from voiceagent.store import repository as repo
from voiceagent.store.migrate import upgrade_async
from voiceagent.webhooks import WebhookDispatcher, create_endpoint, list_deliveries, resend

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver.py"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


async def _listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError("the example receiver did not start")


async def test_the_example_receiver_takes_events_and_tool_calls(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}"
    engine = create_engine(url)
    await upgrade_async(engine)
    sessions = session_factory(engine)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with sessions() as s, s.begin():
        made = await create_endpoint(
            s, url=f"http://127.0.0.1:{port}/hooks", events="call.started,call.ended"
        )
    env = {**os.environ, "WEBHOOK_SECRET": made.secret}
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once; the test waits on the socket)
        [sys.executable, str(EXAMPLE), "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    dispatcher = WebhookDispatcher(sessions, load_settings(database_url=url))
    try:
        await _listening(port)
        async with sessions() as s, s.begin():
            await repo.record_call_started(s, call=CallStarted("x1", "inbound", "sip", T0))
            await repo.record_call_ended(s, call=CallEnded("x1", T0, "caller_hangup"))
        assert await dispatcher.run_once() == 2
        async with sessions() as s, s.begin():
            rows = await list_deliveries(s)
            assert {(r.status, r.response_code) for r in rows} == {("succeeded", 204)}
            await resend(s, delivery_id=rows[0].id)  # a duplicate: acknowledged, not printed twice
        assert await dispatcher.run_once() == 1

        agent = AgentDefinition.model_validate(
            {
                "name": "Shop",
                "fallback": "Sorry.",
                "tools": [
                    {"name": "orders", "url": f"http://127.0.0.1:{port}/tools/orders", "secret_env": "S"}
                ],
            }
        )
        runner = ToolRunner(agent, environ={"S": made.secret})
        try:
            answer = await runner.call("orders", arguments={"order_number": "4411"})
        finally:
            await runner.aclose()
        assert answer == {"status": "has shipped", "eta": {"day": "Friday"}}
    finally:
        await dispatcher.aclose()
        await engine.dispose()
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    lines = [line for line in out.splitlines() if line.startswith("call.")]
    # Sent concurrently: no order is promised (receivers order by the payload's timestamps).
    assert sorted(line.split()[1] for line in lines) == ["call.ended:x1", "call.started:x1"]


def test_the_benchmark_prints_its_figures() -> None:
    result = CliRunner().invoke(cli, ["bench", "webhooks", "--events", "30", "--concurrency", "4", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert (figures["events"], figures["attempts"], figures["database"]) == (30, 30, "sqlite")
    assert figures["events_per_s"] > 0
    assert 0 < figures["latency_ms_p50"] <= figures["latency_ms_p95"]
