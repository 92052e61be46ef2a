"""Integration fixtures: the real packaged models (Whisper tiny.en, hibari, silero VAD) on the CPU.

The engine is loaded once per test session, on the session's event loop; tests that use it run on
that loop too (``pytest.mark.asyncio(loop_scope="session")``). The transcriber is a second, separate
Whisper instance, so the tests check the agent's audio with ears that are not the engine's own.
"""

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from voiceagent.agents import AgentDefinition, builtin_agent_path, load_agent
from voiceagent.config import Settings, load_settings
from voiceagent.engines.cascade import CascadeEngine
from voiceagent.engines.cascade.asr import WhisperAsr


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def agent() -> AgentDefinition:
    return load_agent(builtin_agent_path())


@pytest.fixture(scope="session")
def answers(agent: AgentDefinition) -> dict[str, str]:
    """The shipped agent's FAQ answer for each intent name."""
    return {intent.name: intent.answer for intent in agent.intents}


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine(settings: Settings, agent: AgentDefinition) -> AsyncIterator[CascadeEngine]:
    engine = await CascadeEngine.load(settings, agent)
    yield engine
    await engine.aclose()


@pytest.fixture(scope="session")
def transcriber() -> WhisperAsr:
    """An independent Whisper tiny.en for checking what the agent said."""
    return WhisperAsr("whisper-tiny.en")
