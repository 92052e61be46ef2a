"""Agent tool calls against a real loopback HTTP server that verifies the signature with the
``standardwebhooks`` library: a captured order number in, a filled reply template out, and the
spoken fallback for every way the call can fail."""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from voiceagent.agents import AgentDefinition, Brain, IntentMatcher, Message, RuleBrain, build_brain
from voiceagent.agents.brain import ToolFirstBrain
from voiceagent.agents.tools import ToolRunner, capture_values, fill_template
from voiceagent.config import load_settings
from voiceagent.errors import ConfigError, ToolCallError
from voiceagent.webhooks import new_secret

SECRET = new_secret()


@dataclass
class OrderService:
    """The integrator's side: order lookups keyed by number; ``mode`` scripts misbehaviour."""

    mode: str = "ok"
    calls: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        try:
            request = Webhook(SECRET).verify(body, headers)
        except WebhookVerificationError:
            await self._answer(send, 401, b"{}")
            return
        self.calls.append(request)
        if self.mode == "slow":
            await asyncio.sleep(1.0)
        number = request["arguments"].get("order_number")
        answers = {
            "ok": (200, json.dumps({"status": "has shipped", "eta": {"day": "Friday"}}).encode()),
            "slow": (200, b'{"status": "late", "eta": {"day": "never"}}'),
            "error": (500, b'{"error": "database down"}'),
            "not-json": (200, b"<html>oops</html>"),
            "no-field": (200, b'{"unexpected": true}'),
        }
        status, payload = answers[self.mode] if number == "4411" else (404, b"{}")
        await self._answer(send, status, payload)

    async def _answer(self, send: Any, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def service() -> AsyncIterator[OrderService]:
    app = OrderService()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app.port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off", interface="asgi3"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    yield app
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _agent(port: int, **tool: Any) -> AgentDefinition:
    return AgentDefinition.model_validate(
        {
            "name": "Shop",
            "fallback": "Sorry, I did not catch that.",
            "intents": [
                {
                    "name": "order_status",
                    "examples": ["where is my order", "what is the status of my order"],
                    "keywords": ["order status"],
                    "tool": "orders",
                    "capture": {"order_number": r"\b(\d{3,10})\b"},
                    "capture_prompt": "Which order number is it?",
                    "answer": "Order {order_number} {status} and arrives {eta.day}.",
                },
                {"name": "hours", "examples": ["when are you open"], "answer": "Nine to five."},
            ],
            "tools": [
                {
                    "name": "orders",
                    "url": f"http://127.0.0.1:{port}/tools/orders",
                    "secret_env": "SHOP_TOOL_SECRET",
                    "fallback": "I can't reach the order system right now.",
                    **tool,
                }
            ],
        }
    )


async def _say(brain: RuleBrain, text: str) -> str:
    return "".join([piece async for piece in brain.respond(text, [])])


@pytest.fixture
def env() -> dict[str, str]:
    return {"SHOP_TOOL_SECRET": SECRET}


async def test_the_tool_answer_fills_the_reply(service: OrderService, env: dict[str, str]) -> None:
    agent = _agent(service.port)
    brain = RuleBrain(agent, tools=ToolRunner(agent, environ=env))
    try:
        reply = await _say(brain, "Hi, where is my order four four one one?")
        assert reply == "Order 4411 has shipped and arrives Friday."
        assert await _say(brain, "When are you open?") == "Nine to five."  # no tool, no call
        assert await _say(brain, "Where is my order?") == "Which order number is it?"
    finally:
        await brain.aclose()
    assert len(service.calls) == 1
    call = service.calls[0]
    assert call["tool"] == "orders"
    assert call["agent"] == "Shop"
    assert call["arguments"] == {"order_number": "4411"}


@pytest.mark.parametrize("mode", ["slow", "error", "not-json", "no-field"])
async def test_every_failure_says_the_fallback(service: OrderService, env: dict[str, str], mode: str) -> None:
    service.mode = mode
    agent = _agent(service.port, timeout_s=0.2)
    brain = RuleBrain(agent, tools=ToolRunner(agent, environ=env))
    try:
        assert await _say(brain, "where is my order 4411") == "I can't reach the order system right now."
    finally:
        await brain.aclose()
    assert len(service.calls) == 1


async def test_a_wrong_secret_is_refused_by_the_receiver(service: OrderService) -> None:
    agent = _agent(service.port)
    runner = ToolRunner(agent, environ={"SHOP_TOOL_SECRET": new_secret()})
    try:
        with pytest.raises(ToolCallError, match="HTTP 401"):
            await runner.call("orders", arguments={"order_number": "4411"})
        with pytest.raises(ToolCallError, match="no tool"):
            await runner.call("nope", arguments={})
    finally:
        await runner.aclose()
    assert service.calls == []


async def test_a_tool_nobody_listens_on_says_the_fallback(env: dict[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    agent = _agent(port)
    brain = RuleBrain(agent, tools=ToolRunner(agent, environ=env))
    try:
        assert await _say(brain, "where is my order 4411") == "I can't reach the order system right now."
    finally:
        await brain.aclose()


def test_a_missing_secret_variable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="SHOP_TOOL_SECRET"):
        ToolRunner(_agent(9), environ={})


async def test_build_brain_wires_the_tools_with_the_configured_timeout(
    service: OrderService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_TOOL_SECRET", SECRET)
    service.mode = "slow"
    brain = build_brain(_agent(service.port), load_settings(tool_call_timeout_s=0.2))
    assert isinstance(brain, RuleBrain)
    try:
        assert await _say(brain, "where is my order 4411") == "I can't reach the order system right now."
    finally:
        await brain.aclose()


def test_captures_and_templates() -> None:
    intent = _agent(9).intents[0]
    assert capture_values(intent, "order number 55 please") is None  # too short for the pattern
    assert capture_values(intent, "it's order one two three four") == {"order_number": "1234"}
    assert fill_template("{a} and {b.c}", {"a": 1, "b": {"c": "x"}}) == "1 and x"
    with pytest.raises(ToolCallError):
        fill_template("{missing}", {})
    with pytest.raises(ToolCallError):
        fill_template("{a}", {"a": {"nested": 1}})


def test_agent_definitions_check_their_tools() -> None:
    base = _agent(9).model_dump()
    with pytest.raises(ValueError, match="undefined tool"):
        AgentDefinition.model_validate({**base, "tools": []})
    with pytest.raises(ValueError, match="unique"):
        AgentDefinition.model_validate({**base, "tools": base["tools"] * 2})
    bad_capture = [{**base["intents"][0], "capture": {"n": "("}}, base["intents"][1]]
    with pytest.raises(ValueError, match="regular expression"):
        AgentDefinition.model_validate({**base, "intents": bad_capture})
    with pytest.raises(ValueError, match="url"):
        AgentDefinition.model_validate({**base, "tools": [{**base["tools"][0], "url": "file:///etc"}]})


class _Chatty:
    """Stands in for an LLM brain: answers everything, knows nothing of orders."""

    greeting = "Hello."
    last_action = "answer"

    async def respond(self, user_text: str, history: Sequence[Message]) -> AsyncGenerator[str, None]:
        yield "Your order is probably fine."


async def test_with_an_llm_tool_intents_still_go_to_the_tool(
    service: OrderService, env: dict[str, str]
) -> None:
    agent = _agent(service.port)
    rules = RuleBrain(agent, tools=ToolRunner(agent, environ=env))
    brain = ToolFirstBrain(_Chatty(), rules, IntentMatcher(agent))
    try:
        assert await _say_any(brain, "where is my order 4411") == "Order 4411 has shipped and arrives Friday."
        assert await _say_any(brain, "tell me a joke") == "Your order is probably fine."
    finally:
        await rules.aclose()
    assert len(service.calls) == 1


async def test_build_brain_with_an_llm_puts_the_tools_first(
    service: OrderService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_TOOL_SECRET", SECRET)
    settings = load_settings(llm_base_url="http://127.0.0.1:9/v1")
    brain = build_brain(_agent(service.port), settings)
    assert isinstance(brain, ToolFirstBrain)
    try:
        assert await _say_any(brain, "where is my order 4411") == "Order 4411 has shipped and arrives Friday."
    finally:
        await brain.aclose()


async def _say_any(brain: Brain, text: str) -> str:
    return "".join([piece async for piece in brain.respond(text, [])])
