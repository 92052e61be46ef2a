"""Choosing engines: the worker's by name, the media side's by settings.engine; production needs a token."""

import socket

import pytest

from voiceagent.agents import builtin_agent_path, load_agent
from voiceagent.config import load_settings
from voiceagent.engines.loading import load_engine
from voiceagent.engines.realtime import RealtimeEngine
from voiceagent.errors import ConfigError
from voiceagent.worker.engines import load_worker_engine
from voiceagent.worker.process import run_worker
from voiceagent.worker.scripted import ScriptedWorkerEngine
from voiceagent.worker.server import advertised_host


async def test_worker_engines_by_name() -> None:
    engine = await load_worker_engine("scripted", load_settings())
    assert isinstance(engine, ScriptedWorkerEngine)
    await engine.aclose()
    with pytest.raises(ConfigError, match="unknown worker engine"):
        await load_worker_engine("gpt", load_settings())


async def test_the_realtime_engine_needs_a_url_or_the_pool() -> None:
    agent = load_agent(builtin_agent_path())
    with pytest.raises(ConfigError, match="realtime_url"):
        await load_engine(load_settings(engine="realtime"), agent)
    engine = await load_engine(
        load_settings(engine="realtime", realtime_url="ws://127.0.0.1:1/v1/realtime"), agent
    )
    assert isinstance(engine, RealtimeEngine)
    await engine.aclose()


async def test_a_production_worker_refuses_to_start_without_a_token() -> None:
    with pytest.raises(ConfigError, match="worker_token"):
        await run_worker(load_settings(environment="production"), "scripted")


def test_engine_setting_is_validated() -> None:
    with pytest.raises(ConfigError, match="engine"):
        load_settings(engine="telepathy")


def test_a_wildcard_bind_is_advertised_by_host_name() -> None:
    assert advertised_host("0.0.0.0") == socket.gethostname()
    assert advertised_host("10.0.0.5") == "10.0.0.5"
