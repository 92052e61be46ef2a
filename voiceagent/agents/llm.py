"""An agent brain backed by an OpenAI-compatible chat endpoint, streamed as server-sent events.

Replies are grounded on the agent's own intent answers through the system prompt, and streamed
so the TTS can start on the first words. Transfer and hang-up decisions never go to the model:
the rule matcher makes them first, so a call cannot be dropped by a creative completion.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from voiceagent.agents.definition import Action, AgentDefinition
from voiceagent.agents.matcher import IntentMatcher
from voiceagent.errors import LLMError

if TYPE_CHECKING:
    from voiceagent.agents.brain import Message

__all__ = ["LLMBrain", "build_system_prompt"]

logger = logging.getLogger(__name__)

# Enough context for a phone call; older turns cost latency and rarely matter.
_HISTORY_LIMIT = 20
_ERROR_BODY_CHARS = 200
_DONE = "[DONE]"


def build_system_prompt(agent: AgentDefinition) -> str:
    """The system prompt: persona, speaking rules, and the agent's answers as the only facts."""
    persona = agent.persona.strip() or f"You are the phone assistant of {agent.name}."
    lines = [
        persona,
        "You are on a phone call and everything you write is read aloud by a speech synthesiser. "
        "Answer in one to three short spoken sentences: plain words, no markdown, no lists, "
        "no emoji, no links.",
        f"Speak the language with code {agent.language!r}.",
        "Use only the facts below. If they do not cover the question, say so briefly and offer to "
        "put the caller through to a colleague. Never invent order details, prices or policies.",
        "Facts:",
    ]
    for intent in agent.intents:
        if intent.action != "answer":
            continue
        topic = intent.name.replace("_", " ")
        asked = f' (for example "{intent.examples[0]}")' if intent.examples else ""
        lines.append(f"- {topic}{asked}: {intent.answer.strip()}")
    lines.append(f"If you cannot help at all, say: {agent.fallback.strip()}")
    return "\n".join(lines)


class LLMBrain:
    """Streams replies from ``POST {base_url}/chat/completions`` with ``stream: true``."""

    def __init__(
        self,
        agent: AgentDefinition,
        *,
        base_url: str,
        api_key: str | None,
        model: str,
        timeout_s: float,
        client: httpx.AsyncClient | None = None,
        max_tokens: int = 200,
    ) -> None:
        self._agent = agent
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._timeout_s = timeout_s
        self._timeout = httpx.Timeout(timeout_s)
        self._max_tokens = max_tokens
        self._headers = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=self._timeout)
        self._matcher = IntentMatcher(agent)
        self._system_prompt = build_system_prompt(agent)
        self._last_action: Action = "answer"

    @property
    def greeting(self) -> str | None:
        """The agent's greeting (fixed text, so the call opens without waiting on the model)."""
        return self._agent.greeting

    @property
    def last_action(self) -> Action:
        """``transfer``/``hangup`` when the rules took the turn, else ``answer``."""
        return self._last_action

    @property
    def system_prompt(self) -> str:
        """The system message sent with every request."""
        return self._system_prompt

    async def respond(self, user_text: str, history: Sequence[Message]) -> AsyncGenerator[str, None]:
        """Yield content deltas from the endpoint; raises :class:`LLMError` if it fails."""
        rule = self._matcher.match(user_text)
        if rule.action != "answer":
            # Transfers and goodbyes are decided by rules, and need no model round trip.
            logger.debug("rules took the turn: %s (score %.2f)", rule.action, rule.score)
            self._last_action = rule.action
            yield rule.reply
            return
        self._last_action = "answer"
        async for delta in self._stream(self._messages(user_text, history)):
            yield delta

    async def aclose(self) -> None:
        """Close the HTTP client if this brain created it."""
        if self._owns_client:
            await self._client.aclose()

    def _messages(self, user_text: str, history: Sequence[Message]) -> list[dict[str, str]]:
        # The system prompt is ours; system turns in the history (session memory's summary of the
        # earlier call) are facts to add to it, not instructions to put beside it.
        notes = [m.content for m in history if m.role == "system" and m.content.strip()]
        system = "\n\n".join([self._system_prompt, *notes])
        turns = [m for m in history if m.role != "system"][-_HISTORY_LIMIT:]
        return [
            {"role": "system", "content": system},
            *({"role": m.role, "content": m.content} for m in turns),
            {"role": "user", "content": user_text},
        ]

    async def _stream(self, messages: list[dict[str, str]]) -> AsyncIterator[str]:
        payload = {
            "model": self._model,
            "messages": messages,
            "stream": True,
            "max_tokens": self._max_tokens,
        }
        try:
            async with self._client.stream(
                "POST", self._url, json=payload, headers=self._headers, timeout=self._timeout
            ) as response:
                if response.status_code >= 400:
                    raise LLMError(await self._status_error(response))
                async for delta in self._deltas(response):
                    yield delta
        except httpx.TimeoutException as exc:
            raise LLMError(f"chat endpoint {self._url} timed out after {self._timeout_s:g} s") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise LLMError(f"chat endpoint {self._url} failed: {exc!r}") from exc

    async def _status_error(self, response: httpx.Response) -> str:
        await response.aread()
        body = " ".join(response.text[:_ERROR_BODY_CHARS].split())
        return f"chat endpoint {self._url} answered HTTP {response.status_code}: {body or '(empty body)'}"

    async def _deltas(self, response: httpx.Response) -> AsyncIterator[str]:
        finished = False
        produced = False
        async for line in response.aiter_lines():
            # Only data lines carry chunks; blank lines, comments and event/id fields do not.
            if not line.startswith("data:"):
                continue
            data = line[len("data:") :].strip()
            if data == _DONE:
                finished = True
                break
            content, done = self._parse_chunk(data)
            finished = finished or done
            if content:
                produced = True
                yield content
        if not finished:
            raise LLMError(f"chat endpoint {self._url} ended the stream before [DONE]")
        if not produced:
            raise LLMError(f"chat endpoint {self._url} streamed an empty reply")

    def _parse_chunk(self, data: str) -> tuple[str | None, bool]:
        """Content of one chunk and whether it carried a ``finish_reason``."""
        try:
            chunk: Any = json.loads(data)
        except ValueError as exc:
            raise LLMError(f"chat endpoint {self._url} sent a chunk that is not JSON: {data[:80]!r}") from exc
        if not isinstance(chunk, dict):
            raise LLMError(f"chat endpoint {self._url} sent a chunk that is not an object: {data[:80]!r}")
        if "error" in chunk:
            raise LLMError(f"chat endpoint {self._url} reported an error: {chunk['error']!r}")
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise LLMError(f"chat endpoint {self._url} sent a chunk without 'choices': {data[:80]!r}")
        if not choices:
            # Usage-only chunks (stream_options.include_usage) have an empty choices list.
            return None, False
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            raise LLMError(f"chat endpoint {self._url} sent a chunk without choices[0].delta: {data[:80]!r}")
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            raise LLMError(f"chat endpoint {self._url} sent non-text content: {data[:80]!r}")
        return content, choice.get("finish_reason") is not None
