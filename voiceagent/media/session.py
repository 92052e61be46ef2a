"""CallSession: one call's media layer between a bridge and a speech engine (DESIGN §1, §7).

The bridge calls :meth:`CallSession.push_inbound` and :meth:`CallSession.pull_outbound` once per
20 ms frame, from the event loop; both are synchronous and cheap. Engine traffic runs on two tasks
the session owns: one sends client events in order, one applies server events as they arrive.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from voiceagent.agents.definition import BargeInPolicy
from voiceagent.audio import FRAME_MS, SAMPLE_RATE, SileroVad
from voiceagent.config import Settings
from voiceagent.engines.base import SpeechSession
from voiceagent.engines.events import (
    ClientEvent,
    ConversationItem,
    ConversationItemCreate,
    ConversationItemCreated,
    ConversationItemTruncate,
    ConversationItemTruncated,
    EngineErrorEvent,
    InputAudioBufferAppend,
    InputAudioBufferClear,
    InputAudioBufferCommit,
    InputAudioTranscriptionCompleted,
    ResponseCancel,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseOutputAudioDelta,
    ResponseOutputAudioTranscriptDelta,
    ServerEvent,
)
from voiceagent.engines.items import dtmf_text, new_id
from voiceagent.media.bargein import BargeInDetector, BargeInVerdict, SnippetTranscript
from voiceagent.media.echo import EchoGuard
from voiceagent.media.playout import PlayoutQueue
from voiceagent.media.recorder import CallRecorder
from voiceagent.media.timeline import CallEvent, CallTimeline
from voiceagent.media.turns import EndOfTurn, TurnDetector, TurnEvent

__all__ = ["CallSession", "TurnRecord"]

logger = logging.getLogger(__name__)

# Audio kept from before VAD onset, so the first syllable reaches the ASR whole.
_PREROLL_MS = 300
# How long the agent's voice can still come back as echo after its last frame was played.
_ECHO_TAIL_MS = 400

# (16 kHz snippet, prompt) -> what was said in it
Transcriber = Callable[[npt.NDArray[np.int16], str | None], Awaitable[SnippetTranscript]]


@dataclass
class _Request:
    """One ``response.create`` we sent, matched to its response id in send order."""

    turn: TurnRecord
    response_id: str | None = None
    item_id: str | None = None
    # Dropped: the caller went on talking or barged in; nothing more of it may be played.
    dropped: bool = False
    truncated: bool = False


@dataclass
class TurnRecord:
    """One caller turn and the agent's answer to it, on the call's media clock."""

    index: int
    speech_start_ms: float
    speech_end_ms: float | None = None
    user_text: str = ""
    response_id: str | None = None
    item_id: str | None = None
    reply_text: str = ""
    heard_text: str | None = None
    first_audio_ms: float | None = None
    audio_end_ms: float | None = None
    interrupted: bool = False
    status: str = "listening"
    action: str = "answer"
    # True while the answer is prepared during the hangover and not yet allowed out.
    held: bool = False
    held_audio: list[tuple[str, npt.NDArray[np.int16]]] = field(default_factory=list)

    @property
    def spoken_text(self) -> str:
        """What the caller heard of the reply."""
        return self.reply_text.strip() if self.heard_text is None else self.heard_text


class CallSession:
    """Turn-taking, barge-in, playout accounting and recording for one call."""

    def __init__(
        self,
        *,
        call_id: str,
        engine: SpeechSession,
        vad: SileroVad,
        settings: Settings,
        barge_in: BargeInPolicy | None = None,
        transcriber: Transcriber | None = None,
        echo_guard: bool = True,
        end_of_turn: EndOfTurn | None = None,
        on_event: Callable[[CallEvent], None] | None = None,
    ) -> None:
        self.call_id = call_id
        self.timeline = CallTimeline(on_event)
        self.recorder = CallRecorder()
        self.turns: list[TurnRecord] = []
        self.ended_reason: str | None = None
        self._engine = engine
        self._vad = vad
        self._detector = TurnDetector(
            threshold=settings.vad_threshold,
            min_speech_ms=settings.vad_min_speech_ms,
            hangover_ms=settings.turn_hangover_ms,
            speculate_ms=settings.turn_speculate_ms,
            end_of_turn=end_of_turn,
        )
        self._playout = PlayoutQueue()
        policy = barge_in or BargeInPolicy()
        self._bargein = BargeInDetector(policy, threshold=settings.vad_threshold)
        self._transcriber = transcriber
        self._echo = EchoGuard() if echo_guard else None
        # Echo-free caller frames with their start time: pre-roll for a turn, or the audio since a
        # barge-in's onset once it turns out to be a real interruption.
        self._recent: deque[tuple[float, npt.NDArray[np.int16]]] = deque(
            maxlen=(policy.max_pause_ms + _PREROLL_MS) // FRAME_MS + 2
        )
        self._last_agent_audio_ms = -1e9
        self._echo_noted_ms = -1e9
        self._outbox: asyncio.Queue[ClientEvent | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._classify: asyncio.Task[None] | None = None
        self._in_samples = 0
        self._out_samples = 0
        self._vad_samples = 0
        # A caller frame between stage_inbound and finish_inbound: (residual, echo suspected,
        # caller speaking before it, VAD probabilities if already scored).
        self._staged: tuple[npt.NDArray[np.int16], bool, bool, list[float] | None] | None = None
        self._response_turn: TurnRecord | None = None
        # Requests sent but not yet acknowledged (engines answer response.create in order), and
        # acknowledged ones by response id until their response.done.
        self._unacknowledged: deque[_Request] = deque()
        self._requests: dict[str, _Request] = {}
        self._current: _Request | None = None
        self._log_extra = {"call_id": call_id}

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        for coro, name in ((self._send_loop(), "send"), (self._recv_loop(), "recv")):
            task = asyncio.create_task(coro, name=f"{self.call_id}:{name}")
            self._tasks.add(task)
        self.timeline.add("call_started", 0.0)

    async def aclose(self, reason: str = "completed") -> None:
        """Stop the engine traffic and close the engine session; idempotent."""
        if self.ended_reason is None:
            self.ended_reason = reason
        if not self._tasks:
            return
        self.timeline.add("call_ended", self.media_ms, reason=self.ended_reason)
        self._outbox.put_nowait(None)
        if self._classify is not None:
            self._tasks.add(self._classify)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._engine.aclose()

    # ---- the per-frame path -------------------------------------------------------------------

    @property
    def media_ms(self) -> float:
        return 1000.0 * self._in_samples / SAMPLE_RATE

    def push_inbound(self, frame: npt.NDArray[np.int16]) -> None:
        """One 20 ms caller frame: echo guard, VAD, then turn-taking or barge-in."""
        self.stage_inbound(frame)
        self.finish_inbound()

    def stage_inbound(self, frame: npt.NDArray[np.int16]) -> None:
        """The first half of :meth:`push_inbound`: record, cancel echo, feed the VAD. A VAD window
        it completes waits for :meth:`finish_inbound`, so that a bridge serving several calls on
        one loop can score them in one model call in between (``audio.score_windows``)."""
        if self._staged is not None:
            self.finish_inbound()
        start_ms = self.media_ms
        self._in_samples += frame.size
        self.recorder.inbound_frame(frame)
        residual = frame if self._echo is None else self._echo.process(frame)
        echo = self._echo is not None and self._echo.echo_suspect
        self._recent.append((start_ms, residual))
        was_speaking = self._detector.speaking
        if residual.size <= self._vad.window_samples:
            self._vad.feed(residual)
            self._staged = (residual, echo, was_speaking, None)
        else:  # a frame longer than a VAD window (not a bridge's 20 ms): scored at once
            self._staged = (residual, echo, was_speaking, self._vad.process(residual))

    def finish_inbound(self) -> None:
        """The second half of :meth:`push_inbound`: turn-taking or barge-in on the VAD's verdict."""
        staged = self._staged
        if staged is None:
            return
        self._staged = None
        residual, echo, was_speaking, scored = staged
        window = self._vad.window_samples
        for probability in self._vad.collect() if scored is None else scored:
            start = 1000.0 * self._vad_samples / SAMPLE_RATE
            self._vad_samples += window
            end = 1000.0 * self._vad_samples / SAMPLE_RATE
            # The caller has the floor, or the agent has it and only a barge-in can take it.
            if not self._detector.speaking and self._agent_audible():
                self._barge_in_window(probability, start, end, echo)
            else:
                self._bargein.reset()
                for event in self._detector.update(probability, start, end):
                    self._on_turn_event(event)
        if was_speaking and self._detector.speaking:
            self._send(InputAudioBufferAppend(residual.tobytes()))

    def align_vad(self, phase_samples: int) -> None:
        """Before the first caller frame: put the VAD's window boundaries at ``phase_samples``
        (see :meth:`SileroVad.align`); window times stay on this call's media clock."""
        if self._in_samples == 0 and self._staged is None:
            self._vad_samples = -self._vad.align(phase_samples)

    @property
    def vad(self) -> SileroVad:
        """The call's voice activity detector (its pending window is scored by finish_inbound)."""
        return self._vad

    def pull_outbound(self) -> npt.NDArray[np.int16]:
        """The next 20 ms frame for the caller, counted as played."""
        frame = self._playout.pull()
        start_ms = 1000.0 * self._out_samples / SAMPLE_RATE
        self._out_samples += frame.size
        if self._echo is not None:
            self._echo.reference(frame)
        if self._playout.current_item is not None:
            self._last_agent_audio_ms = start_ms
        turn = self._response_turn
        if turn is not None and turn.first_audio_ms is None and self._playout.current_item is not None:
            turn.first_audio_ms = start_ms - (turn.speech_end_ms or start_ms)
            self.timeline.add(
                "agent_audio_started", start_ms, turn=turn.index, first_audio_ms=turn.first_audio_ms
            )
        self.recorder.outbound_frame(frame)
        return frame

    @property
    def responding(self) -> bool:
        """True from the end of a caller turn until the engine has finished the answer."""
        return self._response_turn is not None and self._response_turn.status in ("thinking", "speaking")

    def played_ms(self, item_id: str) -> float:
        """How much of an answer's audio was handed to the line."""
        return self._playout.played_ms(item_id)

    @property
    def agent_audio_pending(self) -> bool:
        return self._playout.pending_samples > 0

    @property
    def waiting(self) -> bool:
        """Someone waits on a model: the engine for an answer, or the transcriber for a barge-in."""
        return self.responding or self._bargein.state == "classifying"

    def _agent_audible(self) -> bool:
        return (
            self._playout.paused
            or self._playout.pending_samples > 0
            or self.media_ms - self._last_agent_audio_ms <= _ECHO_TAIL_MS
        )

    # ---- turn-taking and barge-in -------------------------------------------------------------

    def _on_turn_event(self, event: TurnEvent) -> None:
        if event.kind == "speech_started":
            self._on_speech_started(event.at_ms)
        elif event.kind == "speech_paused":
            self.timeline.add("speech_paused", self.media_ms, at_ms=event.at_ms, turn=self.turns[-1].index)
            self._request_answer(self.turns[-1], held=True)
        elif event.kind == "speech_resumed":
            self.timeline.add("speech_resumed", self.media_ms, at_ms=event.at_ms, turn=self.turns[-1].index)
            self._drop_held_answer(self.turns[-1])
        else:
            self._on_speech_stopped(event.at_ms)

    def _on_speech_started(self, at_ms: float) -> None:
        self.timeline.add("speech_started", self.media_ms, at_ms=at_ms)
        if self.responding or self.agent_audio_pending:
            self._barge_in(at_ms)
        self._begin_turn(at_ms)

    def _begin_turn(self, onset_ms: float) -> None:
        """Open a caller turn at ``onset_ms`` and send the engine the audio since just before it."""
        self.turns.append(TurnRecord(index=len(self.turns), speech_start_ms=onset_ms))
        self._send(InputAudioBufferClear())
        for start_ms, frame in self._recent:
            if start_ms >= onset_ms - _PREROLL_MS:
                self._send(InputAudioBufferAppend(frame.tobytes()))

    def _on_speech_stopped(self, at_ms: float) -> None:
        turn = self.turns[-1]
        turn.speech_end_ms = at_ms
        self.timeline.add("speech_stopped", self.media_ms, at_ms=at_ms, turn=turn.index)
        if self._response_turn is turn and turn.held:
            # The answer prepared during the hangover may go out now.
            turn.held = False
            for item_id, samples in turn.held_audio:
                self._playout.push(item_id, samples)
            turn.held_audio.clear()
            self.timeline.add("turn_ended", self.media_ms, turn=turn.index, prepared=True)
        else:
            self._request_answer(turn, held=False)
            self.timeline.add("turn_ended", self.media_ms, turn=turn.index, prepared=False)

    def _request_answer(self, turn: TurnRecord, *, held: bool, commit: bool = True) -> None:
        """Commit what the caller said and ask for the answer; ``held`` keeps its audio back."""
        turn.status = "thinking"
        turn.held = held
        self._response_turn = turn
        self._current = _Request(turn)
        self._unacknowledged.append(self._current)
        if commit:
            self._send(InputAudioBufferCommit())
        self._send(ResponseCreate())

    def press(self, digits: str, **details: object) -> None:
        """Keypad digits from the caller (DTMF): a turn of its own, answered like words.

        A key pressed while the agent talks interrupts it at once, as "press 1 at any time"
        promises; a caller half-way through a sentence loses nothing (the audio stays buffered).
        ``details`` (how the digits came, e.g. ``method="info"``) go on the ``dtmf`` event.
        """
        at_ms = self.media_ms
        self.timeline.add("dtmf", at_ms, digit=digits, **details)
        if self.responding or self.agent_audio_pending or self._playout.paused:
            self._barge_in(at_ms, reason="dtmf")
        self._bargein.reset()
        text = dtmf_text(digits)
        turn = TurnRecord(index=len(self.turns), speech_start_ms=at_ms, speech_end_ms=at_ms, user_text=text)
        self.turns.append(turn)
        self._send(ConversationItemCreate(ConversationItem(id=new_id("item"), role="user", text=text)))
        self._request_answer(turn, held=False, commit=False)
        self.timeline.add("turn_ended", self.media_ms, turn=turn.index, prepared=False)

    def _drop_held_answer(self, turn: TurnRecord) -> None:
        """The caller went on talking: the prepared answer was never heard, so it never happened."""
        if self._response_turn is not turn or not turn.held:
            return
        self._stop_current()
        self.timeline.add("prepared_answer_dropped", self.media_ms, turn=turn.index)
        turn.held, turn.held_audio = False, []
        turn.status, turn.response_id, turn.item_id, turn.reply_text = "listening", None, None, ""

    def _barge_in_window(self, probability: float, start_ms: float, end_ms: float, echo: bool) -> None:
        if echo and probability >= self._bargein.threshold and end_ms - self._echo_noted_ms >= 1000:
            self._echo_noted_ms = end_ms
            self.timeline.add("echo_ignored", self.media_ms, at_ms=start_ms)
        verdict = self._bargein.update(probability, start_ms, end_ms, echo=echo)
        if verdict is not None:
            self._apply_verdict(verdict)

    def _apply_verdict(self, verdict: BargeInVerdict) -> None:
        if verdict.kind == "pause":
            self._playout.pause()
            self.timeline.add("agent_paused", self.media_ms, onset_ms=verdict.onset_ms)
        elif verdict.kind == "resume":
            self._playout.resume()
            self.timeline.add(f"{verdict.reason}_ignored", self.media_ms, onset_ms=verdict.onset_ms)
        elif verdict.kind == "classify":
            self._start_classifying(verdict)
        else:
            self._barge_in(verdict.onset_ms, reason=verdict.reason)
            self._begin_turn(verdict.onset_ms)
            self._detector.force_start(verdict.onset_ms, max(verdict.end_ms, verdict.onset_ms))

    def _start_classifying(self, verdict: BargeInVerdict) -> None:
        # Everything from just before the onset up to now: the breathy end of an "uh-huh" is often
        # below the VAD's threshold, and without it Whisper guesses at words ("It helps.").
        pcm = [f for start, f in self._recent if start >= verdict.onset_ms - 100]
        if self._transcriber is None or not pcm:
            # Nothing to listen with: a short sound while the agent talks is taken as a backchannel.
            self._apply_verdict(self._bargein.classified(SnippetTranscript(""), self.media_ms) or verdict)
            return
        transcriber = self._transcriber

        async def classify() -> None:
            heard = await transcriber(np.concatenate(pcm), self._bargein.prompt)
            self.timeline.add("barge_in_transcript", self.media_ms, text=heard.text, logprob=heard.logprob)
            decided = self._bargein.classified(heard, self.media_ms)
            if decided is not None:
                self._apply_verdict(decided)

        self._classify = asyncio.create_task(classify(), name=f"{self.call_id}:classify")

    def _barge_in(self, at_ms: float, reason: str = "speech") -> None:
        """Stop the agent now: silence the outbound leg first, then tell the engine what was heard."""
        turn = self._response_turn
        dropped = self._playout.flush()
        self.timeline.add("barge_in", self.media_ms, onset_ms=at_ms, reason=reason, dropped_samples=dropped)
        if turn is None:
            return
        turn.interrupted = True
        turn.status = "interrupted"
        self._stop_current()

    def _stop_current(self) -> None:
        """Cancel the current answer and truncate it to what was played (maybe once its item is known)."""
        request, self._current, self._response_turn = self._current, None, None
        if request is None:
            return
        request.dropped = True
        self._send(ResponseCancel(request.response_id))
        self._truncate(request)

    def _truncate(self, request: _Request) -> None:
        if request.item_id is None or request.truncated:
            return  # done when the item shows up (see _apply)
        request.truncated = True
        played_ms = self._playout.played_ms(request.item_id)
        self._send(ConversationItemTruncate(item_id=request.item_id, audio_end_ms=int(played_ms)))
        if request.turn.interrupted:
            request.turn.audio_end_ms = played_ms
        self.timeline.add("truncated", self.media_ms, item_id=request.item_id, audio_end_ms=played_ms)

    # ---- engine traffic -----------------------------------------------------------------------

    def _send(self, event: ClientEvent) -> None:
        self._outbox.put_nowait(event)

    async def _send_loop(self) -> None:
        while (event := await self._outbox.get()) is not None:
            await self._engine.send(event)

    async def _recv_loop(self) -> None:
        while True:
            self._apply(await self._engine.recv())

    def _apply(self, event: ServerEvent) -> None:
        request: _Request | None
        match event:
            case InputAudioTranscriptionCompleted(transcript=text):
                target = self._response_turn or (self.turns[-1] if self.turns else None)
                if target is not None:
                    target.user_text = f"{target.user_text} {text}".strip()
                self.timeline.add("transcript", self.media_ms, text=text)
            case ResponseCreated(response_id=rid) if self._unacknowledged:
                request = self._unacknowledged.popleft()
                request.response_id = rid
                self._requests[rid] = request
                if not request.dropped:
                    request.turn.response_id = rid
            case ConversationItemCreated(item=item) if item.role == "assistant":
                # Engines run one response at a time: the item belongs to the newest open request.
                request = next(reversed(self._requests.values()), None)
                if request is not None and request.item_id is None:
                    request.item_id = item.id
                    if request.dropped:
                        self._truncate(request)
                    else:
                        request.turn.item_id = item.id
                        request.turn.status = "speaking"
            case ResponseOutputAudioDelta(response_id=rid, item_id=item_id, delta=delta):
                request = self._requests.get(rid)
                # Audio of a response we stopped may still be in flight: never play it.
                if request is not None and not request.dropped:
                    samples = np.frombuffer(delta, dtype="<i2")
                    if request.turn.held:
                        request.turn.held_audio.append((item_id, samples))
                    else:
                        self._playout.push(item_id, samples)
            case ResponseOutputAudioTranscriptDelta(response_id=rid, delta=delta):
                request = self._requests.get(rid)
                if request is not None and not request.dropped:
                    request.turn.reply_text += delta
            case ResponseDone(response_id=rid, status=status, reason=reason, action=action):
                self.timeline.add(
                    "response_done", self.media_ms, response_id=rid, status=status, reason=reason
                )
                self._on_response_done(self._requests.pop(rid, None), status, action)
            case ConversationItemTruncated(item_id=item_id, text=text):
                for t in self.turns:
                    if t.item_id == item_id:
                        t.heard_text = text
            case EngineErrorEvent(message=message, code=code):
                logger.warning("engine error %s: %s", code, message, extra=self._log_extra)
                self.timeline.add("engine_error", self.media_ms, code=code, message=message)
            case _:
                pass

    def _on_response_done(self, request: _Request | None, status: str, action: str) -> None:
        if request is None or request.dropped:
            return
        turn = request.turn
        turn.status, turn.action = ("done" if status == "completed" else status), action
        if status != "completed" and self._current is request:
            # Failed or found nothing to answer: no answer is coming for this turn.
            self._current, self._response_turn = None, None
        if action == "hangup":
            self.ended_reason = "agent_hangup"

    @property
    def finished(self) -> bool:
        """Nothing in flight: no turn open, no response running, no audio queued."""
        return not self._detector.speaking and not self.responding and not self.agent_audio_pending
