"""The cascade engine: loads ASR and TTS once, serves any number of sessions on them."""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt

from voiceagent.agents import AgentDefinition, IntentMatcher, build_brain
from voiceagent.config import Settings
from voiceagent.engines.cascade.asr import WhisperAsr
from voiceagent.engines.cascade.session import CascadeSession
from voiceagent.engines.cascade.tts import HibariTts
from voiceagent.engines.events import SessionConfig
from voiceagent.media.bargein import SnippetTranscript
from voiceagent.memory import SessionMemory, build_memory

__all__ = ["CascadeEngine"]

logger = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")


class CascadeEngine:
    """ASR → agent brain → TTS on the CPU; implements :class:`voiceagent.engines.SpeechEngine`.

    Model calls run on one worker thread: on a 2-core machine two concurrent Whisper runs only
    slow each other down, and the event loop must stay free for the 20 ms media clock.
    """

    name = "cascade"

    def __init__(
        self,
        *,
        asr: WhisperAsr,
        tts: HibariTts,
        agent: AgentDefinition,
        settings: Settings,
        memory: SessionMemory | None = None,
    ) -> None:
        self.asr = asr
        self.memory = memory
        self.tts = tts
        self.agent = agent
        self._settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cascade-model")
        # Weak: a session the caller closed and dropped must not be kept alive by the engine.
        self._sessions: weakref.WeakSet[CascadeSession] = weakref.WeakSet()

    asr_sample_rate = WhisperAsr.sample_rate
    tts_sample_rate = HibariTts.sample_rate

    @classmethod
    async def load(cls, settings: Settings, agent: AgentDefinition, *, warm_up: bool = True) -> CascadeEngine:
        """Resolve, verify and load the models off the event loop, then warm them up."""

        def build() -> tuple[WhisperAsr, HibariTts]:
            asr = WhisperAsr(
                settings.asr_model,
                language=settings.asr_language,
                threads=settings.asr_threads,
                cache_dir=settings.model_cache_dir,
            )
            tts = HibariTts(settings.tts_model, speed=settings.tts_speed)
            if warm_up:
                asr.warm_up()
                tts.warm_up()
            return asr, tts

        asr, tts = await asyncio.to_thread(build)
        memory = build_memory(settings, matcher=IntentMatcher(agent))
        return cls(asr=asr, tts=tts, agent=agent, settings=settings, memory=memory)

    async def run_blocking(self, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """Run a model call on the engine's model thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def transcribe(self, pcm16: npt.NDArray[np.int16], prompt: str | None = None) -> SnippetTranscript:
        """Transcribe a short 16 kHz snippet (the media layer asks this to classify a barge-in)."""
        text, logprob = await self.run_blocking(self.asr.transcribe_scored, pcm16, prompt=prompt)
        return SnippetTranscript(text, logprob)

    async def open_session(self, config: SessionConfig) -> CascadeSession:
        session = CascadeSession(self, config, build_brain(self.agent, self._settings), self.memory)
        self._sessions.add(session)
        return session

    async def aclose(self) -> None:
        await asyncio.gather(*(s.aclose() for s in list(self._sessions)), return_exceptions=True)
        if self.memory is not None:
            await self.memory.aclose()
        self._executor.shutdown(wait=False, cancel_futures=True)
