"""The agent brain: turns what the caller said into what the agent says, piece by piece.

The cascade engine calls :meth:`Brain.respond` once per caller turn and speaks the pieces as they
arrive, then reads :attr:`Brain.last_action` to decide whether to keep listening, transfer or hang
up. :class:`RuleBrain` answers from the agent's intents; :class:`LLMBrain` streams from an
OpenAI-compatible endpoint grounded on the same intents; :class:`FallbackBrain` answers from the
rules when the endpoint is down. :func:`build_brain` picks from settings.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from voiceagent.agents.definition import Action, AgentDefinition
from voiceagent.agents.llm import LLMBrain
from voiceagent.agents.matcher import IntentMatcher
from voiceagent.config import Settings
from voiceagent.errors import LLMError

if TYPE_CHECKING:
    # Imported when a brain is built: tools reach into memory, which imports this package.
    from voiceagent.agents.tools import ToolRunner

__all__ = ["Brain", "FallbackBrain", "LLMBrain", "Message", "RuleBrain", "ToolFirstBrain", "build_brain"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """One turn of the conversation as the brain sees it."""

    role: Literal["system", "user", "assistant"]
    content: str


class Brain(Protocol):
    """What the cascade engine talks to between ASR and TTS."""

    @property
    def greeting(self) -> str | None:
        """Said when the call is answered, or None to wait for the caller."""
        ...

    @property
    def last_action(self) -> Action:
        """What the call does after the reply of the latest finished :meth:`respond`."""
        ...

    def respond(self, user_text: str, history: Sequence[Message]) -> AsyncGenerator[str, None]:
        """Yield the reply to ``user_text`` in pieces as they become available.

        ``history`` holds the earlier turns, oldest first, without ``user_text`` itself.
        """
        ...


class RuleBrain:
    """Answers with the agent's own intent answers; one piece per reply, no network."""

    def __init__(
        self, agent: AgentDefinition, *, matcher: IntentMatcher | None = None, tools: ToolRunner | None = None
    ) -> None:
        self._agent = agent
        self._matcher = matcher if matcher is not None else IntentMatcher(agent)
        self._tools = tools
        self._last_action: Action = "answer"

    @property
    def greeting(self) -> str | None:
        """The agent's greeting."""
        return self._agent.greeting

    @property
    def last_action(self) -> Action:
        """The action of the intent matched by the latest reply."""
        return self._last_action

    async def respond(self, user_text: str, history: Sequence[Message]) -> AsyncGenerator[str, None]:
        """Yield the matched intent's answer (or the fallback) as a single piece.

        An intent with a tool is answered from the tool's JSON (or its fallback line, if the call
        fails or runs past its timeout).
        """
        match = self._matcher.match(user_text)
        self._last_action = match.action
        if match.intent is not None and match.intent.tool is not None and self._tools is not None:
            yield await self._tools.reply(match.intent, user_text)
            return
        yield match.reply

    async def aclose(self) -> None:
        """Close the tool runner's HTTP client, if there is one."""
        if self._tools is not None:
            await self._tools.aclose()


class FallbackBrain:
    """Answers with ``primary``, and with ``fallback`` when ``primary`` fails before speaking."""

    def __init__(self, primary: Brain, fallback: Brain) -> None:
        self._primary = primary
        self._fallback = fallback
        self._last_action: Action = "answer"

    @property
    def greeting(self) -> str | None:
        """The primary brain's greeting, else the fallback's."""
        greeting = self._primary.greeting
        return greeting if greeting is not None else self._fallback.greeting

    @property
    def last_action(self) -> Action:
        """The action of whichever brain gave the latest reply."""
        return self._last_action

    async def respond(self, user_text: str, history: Sequence[Message]) -> AsyncGenerator[str, None]:
        """Yield the primary's reply; if it fails before its first piece, the fallback's reply.

        A failure after the first piece ends the reply there: the caller has already heard the
        start of it, and starting over with a different answer would be worse than stopping.
        """
        self._last_action = "answer"
        started = False
        stream = self._primary.respond(user_text, history)
        try:
            async for piece in stream:
                started = True
                yield piece
        except LLMError as exc:
            if started:
                logger.warning("brain failed mid-reply, ending the reply early: %s", exc)
                return
            logger.warning("brain failed, answering from the fallback: %s", exc)
        else:
            self._last_action = self._primary.last_action
            return
        finally:
            await _close_stream(stream)
        stream = self._fallback.respond(user_text, history)
        try:
            async for piece in stream:
                yield piece
        finally:
            await _close_stream(stream)
        self._last_action = self._fallback.last_action

    async def aclose(self) -> None:
        """Close both brains (those that have an ``aclose``)."""
        for brain in (self._primary, self._fallback):
            close = getattr(brain, "aclose", None)
            if close is not None:
                await close()


class ToolFirstBrain:
    """Answers intents that have a tool with the tool's answer, everything else with ``primary``.

    An LLM knows nothing of an order's status: left to it, a tool intent would get a plausible
    invention. So the rules decide first whether the caller asked something a tool answers.
    """

    def __init__(self, primary: Brain, rules: RuleBrain, matcher: IntentMatcher) -> None:
        self._primary = primary
        self._rules = rules
        self._matcher = matcher
        self._last_action: Action = "answer"

    @property
    def greeting(self) -> str | None:
        """The primary brain's greeting."""
        return self._primary.greeting

    @property
    def last_action(self) -> Action:
        """The action of whichever brain gave the latest reply."""
        return self._last_action

    async def respond(self, user_text: str, history: Sequence[Message]) -> AsyncGenerator[str, None]:
        """The rule brain's (tool) reply for a tool intent, else the primary brain's reply."""
        match = self._matcher.match(user_text)
        brain: Brain = self._rules if match.intent is not None and match.intent.tool else self._primary
        stream = brain.respond(user_text, history)
        try:
            async for piece in stream:
                yield piece
        finally:
            await _close_stream(stream)
        self._last_action = brain.last_action

    async def aclose(self) -> None:
        """Close the primary brain (which closes the rules it falls back to)."""
        close = getattr(self._primary, "aclose", None)
        if close is not None:
            await close()


async def _close_stream(stream: AsyncIterator[str]) -> None:
    # An abandoned async generator is only finalised by the event loop later; close it now so
    # an HTTP response inside it is released when the engine stops listening (barge-in).
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def build_brain(agent: AgentDefinition, settings: Settings) -> Brain:
    """A :class:`RuleBrain`, or an LLM brain that falls back to rules if an endpoint is set.

    With an LLM, intents that have a tool are still answered by the rules and the tool.
    """
    from voiceagent.agents.tools import ToolRunner

    tools = ToolRunner(agent, timeout_s=settings.tool_call_timeout_s) if agent.tools else None
    matcher = IntentMatcher(agent)
    rules = RuleBrain(agent, matcher=matcher, tools=tools)
    if settings.llm_base_url is None:
        return rules
    llm = LLMBrain(
        agent,
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key,
        model=settings.llm_model,
        timeout_s=settings.llm_timeout_s,
    )
    brain = FallbackBrain(llm, rules)
    return ToolFirstBrain(brain, rules, matcher) if tools is not None else brain
