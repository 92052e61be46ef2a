"""Agent tool calls: an intent's captured values go to the integrator's HTTP endpoint, and the JSON
answer fills the intent's reply template.

The request is signed like a webhook (Standard Webhooks headers, ``whsec_`` secret), so an
integrator verifies both the same way. A call has a tight timeout (the caller is waiting on the
line); a timeout, an error status, a non-JSON answer or a field the template needs but the answer
lacks all end the same way: the tool's spoken fallback line, never silence or an exception.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from voiceagent import __version__
from voiceagent.agents.definition import AgentDefinition, Intent, Tool
from voiceagent.errors import ConfigError, ToolCallError
from voiceagent.memory.numbers import normalize_numbers
from voiceagent.webhooks.signing import sign_headers

__all__ = ["ToolRunner", "capture_values", "fill_template"]

logger = logging.getLogger(__name__)

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\}")
_SCALARS = (str, int, float)


def capture_values(intent: Intent, utterance: str) -> dict[str, str] | None:
    """The intent's captures found in ``utterance`` (spelled-out digits read as digits), or None
    if one is missing. A pattern's group of the capture's name wins, then its first group."""
    text = normalize_numbers(utterance)
    values: dict[str, str] = {}
    for name, pattern in intent.capture.items():
        found = re.search(pattern, text, re.IGNORECASE)
        if found is None:
            return None
        if name in found.re.groupindex:
            value = found.group(name)
        else:
            value = found.group(1) if found.re.groups else found.group(0)
        values[name] = (value or "").strip()
    return values


def fill_template(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with each ``{name}`` / ``{a.b}`` replaced; ToolCallError if one is missing."""

    def lookup(match: re.Match[str]) -> str:
        value: Any = values
        for part in match.group(1).split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise ToolCallError(f"the tool's answer has no {match.group(1)!r}")
            value = value[part]
        if isinstance(value, bool) or not isinstance(value, _SCALARS):
            raise ToolCallError(f"{match.group(1)!r} is not a text or a number: {value!r}")
        return str(value)

    return _FIELD.sub(lookup, template)


class ToolRunner:
    """Calls one agent's tools; owns the HTTP client, closed by :meth:`aclose`."""

    def __init__(
        self,
        agent: AgentDefinition,
        *,
        timeout_s: float = 1.5,
        client: httpx.AsyncClient | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._agent = agent
        self._tools = {tool.name: tool for tool in agent.tools}
        self._secrets: dict[str, str] = {}
        for tool in agent.tools:
            if tool.secret_env is not None:
                secret = env.get(tool.secret_env)
                if not secret:
                    raise ConfigError(
                        f"tool {tool.name!r}: environment variable {tool.secret_env} is not set"
                    )
                self._secrets[tool.name] = secret
        self._timeout_s = timeout_s
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            follow_redirects=False, headers={"user-agent": f"voiceagent-tools/{__version__}"}
        )

    async def reply(self, intent: Intent, utterance: str) -> str:
        """What to say for ``intent``: its template filled from the tool, or a fallback line."""
        tool = self._tools[intent.tool] if intent.tool is not None else None
        if tool is None:
            return intent.answer
        arguments = capture_values(intent, utterance)
        if arguments is None:
            return intent.capture_prompt or tool.fallback
        try:
            answer = await self.call(tool.name, arguments=arguments, utterance=utterance)
            return fill_template(intent.answer, {**arguments, **answer})
        except ToolCallError as exc:
            logger.warning(
                "tool %s failed, saying the fallback: %s", tool.name, exc, extra={"tool": tool.name}
            )
            return tool.fallback

    async def call(self, name: str, *, arguments: Mapping[str, Any], utterance: str = "") -> dict[str, Any]:
        """POST the signed call to tool ``name`` and return its JSON object; ToolCallError if not."""
        tool = self._tools.get(name)
        if tool is None:
            raise ToolCallError(f"agent {self._agent.name!r} has no tool {name!r}")
        payload = {
            "tool": name,
            "agent": self._agent.name,
            "arguments": dict(arguments),
            "utterance": utterance,
        }
        body = httpx.Request("POST", tool.url, json=payload).content.decode("utf-8")
        headers = {"content-type": "application/json"}
        if name in self._secrets:
            headers |= sign_headers([self._secrets[name]], msg_id=f"tool_{uuid.uuid4().hex}", body=body)
        return await self._post(tool, body, headers)

    async def _post(self, tool: Tool, body: str, headers: dict[str, str]) -> dict[str, Any]:
        timeout_s = tool.timeout_s or self._timeout_s
        started = time.perf_counter()
        try:
            response = await self._client.post(tool.url, content=body, headers=headers, timeout=timeout_s)
        except httpx.TimeoutException as exc:
            raise ToolCallError(f"tool {tool.name!r} did not answer within {timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise ToolCallError(f"tool {tool.name!r}: {type(exc).__name__}: {exc}") from exc
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        logger.debug("tool %s answered %d in %.0f ms", tool.name, response.status_code, elapsed_ms)
        if not response.is_success:
            raise ToolCallError(f"tool {tool.name!r} answered HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise ToolCallError(f"tool {tool.name!r} answered something that is not JSON") from exc
        if not isinstance(answer, dict):
            raise ToolCallError(f"tool {tool.name!r} answered JSON that is not an object")
        return answer

    async def aclose(self) -> None:
        """Close the HTTP client (if this runner made it)."""
        if self._own_client:
            await self._client.aclose()
