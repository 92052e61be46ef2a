"""Keypad digits (DTMF) as a caller's turn: the text form, intent choice, and the cascade answering it."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError
from test_cascade_memory import ScriptedAsr, SilentTts

from voiceagent.agents import Intent, IntentMatcher, builtin_agent_path, load_agent
from voiceagent.config import load_settings
from voiceagent.engines.cascade import CascadeEngine
from voiceagent.engines.events import (
    ConversationItem,
    ConversationItemCreate,
    ConversationItemCreated,
    EngineErrorEvent,
    ResponseCreate,
    ResponseDone,
    ResponseOutputAudioTranscriptDelta,
    SessionConfig,
)
from voiceagent.engines.items import dtmf_digits, dtmf_text


def test_dtmf_text_round_trips_and_speech_is_not_dtmf() -> None:
    assert dtmf_text("0") == "[pressed 0]"
    assert dtmf_digits(dtmf_text("12#")) == "12#"
    assert dtmf_digits("press zero") is None
    assert dtmf_digits("I pressed 0 already") is None


def test_a_digit_chooses_its_intent_and_an_unknown_one_gets_the_fallback() -> None:
    agent = load_agent(builtin_agent_path())
    matcher = IntentMatcher(agent)
    operator = matcher.match(dtmf_text("0"))
    assert operator.intent is not None
    assert (operator.intent.name, operator.action) == ("speak_to_human", "transfer")
    unknown = matcher.match(dtmf_text("7"))
    assert unknown.intent is None
    assert unknown.reply == agent.fallback


def test_intent_dtmf_must_be_keypad_digits() -> None:
    with pytest.raises(ValidationError, match="keypad"):
        Intent(name="x", answer="y", dtmf=["9x"])


async def test_the_cascade_answers_a_keypad_turn_without_audio() -> None:
    agent = load_agent(builtin_agent_path())
    engine = CascadeEngine(asr=ScriptedAsr(), tts=SilentTts(), agent=agent, settings=load_settings())  # type: ignore[arg-type]
    session = await engine.open_session(SessionConfig())
    try:
        await session.recv()  # session.created
        await session.send(ConversationItemCreate(ConversationItem("item_k", "user", dtmf_text("0"))))
        created = await asyncio.wait_for(session.recv(), 5)
        assert isinstance(created, ConversationItemCreated)
        assert (created.item.id, created.item.text) == ("item_k", "[pressed 0]")
        await session.send(ResponseCreate())
        said, done = "", None
        while done is None:
            event = await asyncio.wait_for(session.recv(), 10)
            if isinstance(event, ResponseOutputAudioTranscriptDelta):
                said += event.delta
            elif isinstance(event, ResponseDone):
                done = event
        assert done.status == "completed"
        assert done.action == "transfer"
        assert "put you through" in said
        # Only a user's text can be added; the session says so and goes on.
        await session.send(ConversationItemCreate(ConversationItem("item_b", "assistant", "hi")))
        error = await asyncio.wait_for(session.recv(), 5)
        assert isinstance(error, EngineErrorEvent)
        assert error.code == "invalid_item"
    finally:
        await session.aclose()
        await engine.aclose()
