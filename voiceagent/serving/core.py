"""The engine core: one synchronous loop that serves every admitted call with batched steps.

    while running:
        take_input()                 # admissions, audio, turns; aborts (cancel/truncate) first
        plan = scheduler.schedule()  # which slots encode, prefill, decode
        outputs = execute(plan)      # one batched pass of each kind
        emit(outputs)                # tokens, speech frames, audio, finished turns

Inputs arrive on thread-safe queues (aborts on their own queue, applied between steps); outputs go
to one callback, called on the loop's thread. `run_busy_loop` is the loop of a worker thread;
`step()` runs one iteration synchronously (tests, benchmarks).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from voiceagent.model import LogMelFrontend, SpeechLM, Vocoder
from voiceagent.serving.protocol import (
    EOS,
    AddCall,
    AppendAudio,
    CancelTurn,
    EngineInput,
    EngineOutput,
    FinishReason,
    RemoveCall,
    StartTurn,
    TruncateTurn,
    TurnFinished,
    TurnOutput,
)
from voiceagent.serving.runner import DecodeRunner
from voiceagent.serving.scheduler import CallState, Scheduler, StepPlan
from voiceagent.serving.slots import SlotPool, SlotsFullError

__all__ = ["EngineConfig", "EngineCore", "EngineThread"]

logger = logging.getLogger(__name__)

_STOP = object()


class _Wake:
    """Put on the input queue after an abort, so a loop idling on the queue wakes to apply it."""


@dataclass(frozen=True)
class EngineConfig:
    """Sizes of the pools and budgets of a step."""

    max_slots: int = 8
    max_tokens: int = 512  # decoder context per call (tokens)
    max_frames: int = 512  # cross-attention context per call (12.5 Hz frames)
    max_prefill_tokens: int = 512  # prompt tokens one step may prefill
    idle_wait_s: float = 0.05  # how long an idle loop waits for input before looking again


class EngineCore:
    """Owns the model, the slot pool and the scheduler. Every method but the `submit`/`abort`
    family and `stop` belongs to the loop's thread."""

    def __init__(
        self,
        model: SpeechLM,
        config: EngineConfig | None = None,
        *,
        on_output: Callable[[Sequence[EngineOutput]], None] | None = None,
        vocoder: Vocoder | None = None,
        runner: DecodeRunner | None = None,
    ) -> None:
        self.model = model.eval()
        self.config = cfg = config or EngineConfig()
        c = model.config
        self.device = model.norm.weight.device
        self.dtype = model.norm.weight.dtype
        self.chunk_mel_frames = c.subsample_factor  # 8 mel frames = 80 ms = one encoder frame
        self.pool = SlotPool(
            model, cfg.max_slots, max_tokens=cfg.max_tokens, max_frames=cfg.max_frames,
            device=self.device, dtype=self.dtype,
        )  # fmt: skip
        self.frontend = LogMelFrontend(c)
        self.runner = runner or DecodeRunner(model)
        self.scheduler = Scheduler(
            chunk_mel_frames=self.chunk_mel_frames, max_slots=cfg.max_slots, max_tokens=cfg.max_tokens,
            max_frames=cfg.max_frames, max_prefill_tokens=cfg.max_prefill_tokens,
            bucket_rows=self.runner.use_graphs,
        )  # fmt: skip
        self.vocoder = vocoder
        self.on_output = on_output
        self.calls: dict[str, CallState] = {}
        self._mel: dict[str, Tensor] = {}  # per call: (T, n_mels) log-mel frames not yet encoded
        self._inputs: queue.SimpleQueue[EngineInput | object] = queue.SimpleQueue()
        self._aborts: queue.SimpleQueue[CancelTurn | TruncateTurn] = queue.SimpleQueue()
        self._sampled_vocab = EOS + 1  # greedy over the bytes and EOS

    # ---- thread-safe entry points -------------------------------------------------------------

    def submit(self, item: EngineInput) -> None:
        """Queue an input; cancels and truncations jump the queue (they apply before the next step)."""
        if isinstance(item, CancelTurn | TruncateTurn):
            self._aborts.put(item)
            self._inputs.put(_Wake())  # an idle loop waits on the input queue
        else:
            self._inputs.put(item)

    def stop(self) -> None:
        """Make `run_busy_loop` return after the current step."""
        self._inputs.put(_STOP)

    # ---- the loop -----------------------------------------------------------------------------

    def run_busy_loop(self) -> None:
        """Serve until `stop()`: take input → schedule → execute → emit."""
        while True:
            busy = any(
                s.phase != "listening" or s.mel_frames >= self.chunk_mel_frames for s in self.calls.values()
            )
            if not self._take_input(block=not busy):
                return
            self._step_once()

    def step(self) -> list[EngineOutput]:
        """One iteration without blocking; returns what it emitted."""
        self._take_input(block=False)
        return self._step_once()

    def _step_once(self) -> list[EngineOutput]:
        outputs = self._aborts_between_steps()
        plan = self.scheduler.schedule(self.calls.values())
        if not plan.is_empty:
            try:
                outputs += self.execute(plan)
            except Exception as exc:  # a bad step must not take every call's loop down with it
                logger.exception("engine step failed")
                outputs += self._fail_turns(f"engine step failed: {exc}")
        self._emit(outputs)
        return outputs

    def _take_input(self, *, block: bool) -> bool:
        """Apply queued inputs; False once `stop()` was called."""
        try:
            item = self._inputs.get(timeout=self.config.idle_wait_s) if block else self._inputs.get_nowait()
        except queue.Empty:
            return True
        while True:
            if item is _STOP:
                return False
            try:
                self._apply(item)
            except Exception:  # one call's bad input must not stop the loop
                logger.exception("engine input %s failed", type(item).__name__)
            try:
                item = self._inputs.get_nowait()
            except queue.Empty:
                return True

    def _emit(self, outputs: list[EngineOutput]) -> None:
        if outputs and self.on_output is not None:
            self.on_output(outputs)

    # ---- inputs -------------------------------------------------------------------------------

    def _apply(self, item: object) -> None:
        match item:
            case AddCall(call_id=call_id):
                self._add(call_id)
            case RemoveCall(call_id=call_id):
                state = self.calls.pop(call_id, None)
                self._mel.pop(call_id, None)
                if state is not None:
                    self.pool.evict(state.slot)
            case AppendAudio(call_id=call_id, audio=audio):
                self._append(call_id, audio)
            case StartTurn():
                self._start_turn(item)

    def _add(self, call_id: str) -> None:
        if call_id in self.calls:
            return
        try:
            slot = self.pool.admit(call_id)
        except SlotsFullError as exc:
            self._emit([TurnFinished(call_id, "", "error", message=str(exc))])
            return
        self.calls[call_id] = CallState(call_id, slot)
        self._mel[call_id] = torch.zeros(0, self.model.config.n_mels)

    def _append(self, call_id: str, audio: Tensor) -> None:
        state = self.calls.get(call_id)
        if state is None:
            return
        tails = self.pool.frontend_tails
        mel, tail = self.frontend.stream(audio.reshape(1, -1).float(), tails[state.slot][None])
        tails[state.slot] = tail[0]
        self.feed_mel(call_id, mel[0])

    def feed_mel(self, call_id: str, mel: Tensor) -> None:
        """Queue log-mel frames `(T, n_mels)` for a call's encoder directly (precomputed features,
        benchmarks); on the loop's thread, like every method but `submit` and `stop`."""
        state = self.calls[call_id]
        self._mel[call_id] = torch.cat([self._mel[call_id], mel.float().cpu()])
        state.mel_frames = self._mel[call_id].shape[0]

    def _start_turn(self, item: StartTurn) -> None:
        state = self.calls.get(item.call_id)
        if state is None:
            return
        finished = self._finish(state, "cancelled") if state.turn_id is not None else []
        self._emit(finished)
        # Reply tokens sampled but never fed back (the last one of a turn) open the next prompt.
        cached = state.self_len - state.turn_start
        prompt = [t for t in state.tokens[max(cached, 0) :] if t != EOS] + list(item.prompt)
        if state.self_len + len(prompt) + item.max_steps + 1 > self.config.max_tokens:
            # The decoder context is full: start it afresh (the caller's audio stays in the cross cache).
            logger.info(
                "decoder context of call %s is full; restarting it", state.call_id,
                extra={"call_id": state.call_id},
            )  # fmt: skip
            state.self_len = 0
            self.pool.cache.self_lengths[state.slot] = 0
            prompt = list(item.prompt)
        prompt = prompt[-(self.config.max_tokens // 2) :]  # a prompt longer than that keeps its end
        state.turn_id, state.prompt, state.tokens = item.turn_id, prompt, []
        state.steps_left = min(item.max_steps, self.config.max_tokens - state.self_len - len(prompt) - 1)
        state.phase = "prefill"

    def _aborts_between_steps(self) -> list[EngineOutput]:
        outputs: list[EngineOutput] = []
        while True:
            try:
                item = self._aborts.get_nowait()
            except queue.Empty:
                return outputs
            state = self.calls.get(item.call_id)
            if state is None or (state.turn_id is None and isinstance(item, CancelTurn)):
                continue
            if isinstance(item, CancelTurn):
                if item.turn_id in (None, state.turn_id):
                    outputs += self._finish(state, "cancelled")
            else:
                outputs += self._truncate(state, item)

    def _truncate(self, state: CallState, item: TruncateTurn) -> list[EngineOutput]:
        running = state.turn_id == item.turn_id
        if not running and (state.turn_id is not None or state.last_turn_id != item.turn_id):
            return []  # a later turn has begun: the old one's tokens are no longer at the end
        if state.phase == "prefill":  # nothing of the turn is in the cache yet
            return self._finish(state, "truncated")
        keep = max(0, item.keep_tokens)
        cached = state.self_len - state.turn_start
        state.tokens = state.tokens[:keep]
        if cached > keep:
            state.self_len = state.turn_start + keep
            self.pool.cache.self_lengths[state.slot] = state.self_len
        return self._finish(state, "truncated") if running else []

    def _finish(
        self, state: CallState, reason: FinishReason, message: str | None = None
    ) -> list[EngineOutput]:
        if state.turn_id is None:
            return []
        if state.phase == "prefill":  # the prompt never went in: nothing of this turn is cached
            state.tokens = []
        done = TurnFinished(state.call_id, state.turn_id, reason, tuple(state.tokens), message)
        state.last_turn_id = state.turn_id
        state.phase, state.turn_id, state.prompt, state.steps_left = "listening", None, [], 0
        return [done]

    def _fail_turns(self, message: str) -> list[EngineOutput]:
        outputs: list[EngineOutput] = []
        for state in self.calls.values():
            outputs += self._finish(state, "error", message)
        return outputs

    # ---- the step -----------------------------------------------------------------------------

    @torch.no_grad()
    def execute(self, plan: StepPlan) -> list[EngineOutput]:
        """Run a plan: encode, then prefill, then decode; returns the turns' outputs."""
        if plan.encode:
            self._encode(plan.encode)
        produced: list[tuple[CallState, Tensor, Tensor]] = []  # (state, token (), mel)
        if plan.prefill:
            produced += self._prefill(plan)
        if plan.decode:
            produced += self._decode(plan)
        return self._turn_outputs(produced)

    def _encode(self, slots: tuple[int, ...]) -> None:
        states = [self._state_of(slot) for slot in slots]
        k = self.chunk_mel_frames
        chunks = []
        for s in states:
            buffer = self._mel[s.call_id]
            chunks.append(buffer[:k])
            self._mel[s.call_id] = buffer[k:]
            s.mel_frames -= k
        index = torch.tensor(slots, device=self.device)
        mel = torch.stack(chunks).to(self.device, self.dtype)  # (B', 8, n_mels)
        frames, new_state = self.model.encoder.encode_chunk(mel, self.pool.encoder_rows(index))
        self.pool.store_encoder_rows(index, new_state)
        fits = [s.cross_len < self.config.max_frames for s in states]
        for s, fit in zip(states, fits, strict=True):
            if fit:
                s.cross_len += 1
            else:  # a call longer than the cache: its latest audio is not heard (see docs/engine.md)
                logger.warning(
                    "cross-attention cache of call %s is full; audio dropped", s.call_id,
                    extra={"call_id": s.call_id},
                )  # fmt: skip
        keep = torch.tensor(fits, device=self.device)
        rows = max(slots) + 1
        full = frames.new_zeros(rows, 1, frames.shape[-1])  # (rows, 1, enc_dim)
        full[index[keep]] = frames[keep, :1]
        n_frames = torch.zeros(rows, dtype=torch.long, device=self.device)
        n_frames[index[keep]] = 1
        self.model.add_audio_frames(self.pool.view(rows), full, n_frames)

    def _prefill(self, plan: StepPlan) -> list[tuple[CallState, Tensor, Tensor]]:
        """One pass over the slot range that holds the new turns (not the whole batch: prompts are
        many tokens, so rows without one would be costly padding)."""
        states = [self._state_of(slot) for slot in plan.prefill]
        lo, hi = plan.prefill[0], plan.prefill[-1] + 1
        width = max(len(s.prompt) for s in states)
        tokens = torch.zeros(hi - lo, width, dtype=torch.long)
        n_tokens = torch.zeros(hi - lo, dtype=torch.long)
        for s in states:
            tokens[s.slot - lo, : len(s.prompt)] = torch.tensor(s.prompt)
            n_tokens[s.slot - lo] = len(s.prompt)
        out = self.model.prefill(self.pool.view(hi, lo), tokens.to(self.device), n_tokens.to(self.device))
        rows = torch.tensor([s.slot - lo for s in states], device=self.device)
        last = n_tokens.to(self.device)[rows] - 1
        logits = out.text_logits[rows, last]  # (B', V)
        mel = out.mel[rows, last]  # (B', n_mel_out, n_mels)
        for s in states:
            s.self_len += len(s.prompt)
            s.turn_start, s.prompt, s.phase = s.self_len, [], "speaking"
        return self._sampled(states, torch.tensor(plan.prefill, device=self.device), logits, mel)

    def _decode(self, plan: StepPlan) -> list[tuple[CallState, Tensor, Tensor]]:
        # Graphs replay on the prefix [0, rows) (fixed addresses); eager runs skip idle leading rows.
        lo = 0 if self.runner.use_graphs else plan.decode[0]
        rows = plan.rows
        view = self.pool.view(rows, lo)
        index = torch.tensor(plan.decode, device=self.device)  # slots
        local = index - lo  # rows of the view
        active = torch.zeros(rows - lo, dtype=torch.bool, device=self.device)
        active[local] = True
        saved = view.self_lengths.clone()
        out = self.runner.decode(
            view, self.pool.next_tokens[lo:rows], self.pool.next_speech[lo:rows],
            kv_len=plan.kv_len, frames_len=plan.frames_len,
        )  # fmt: skip
        # Idle rows in the batch wrote a latent past their length (masked); their lengths stay put.
        view.self_lengths.copy_(torch.where(active, saved + 1, saved))
        states = [self._state_of(slot) for slot in plan.decode]
        for s in states:
            s.self_len += 1
        return self._sampled(states, index, out.text_logits[local], out.mel[local])

    def _sampled(
        self, states: list[CallState], index: Tensor, logits: Tensor, mel: Tensor
    ) -> list[tuple[CallState, Tensor, Tensor]]:
        """Greedy over bytes and EOS; the token and frames become the slot's next decoder input."""
        tokens = logits[:, : self._sampled_vocab].argmax(-1)  # (B',)
        self.pool.next_tokens[index] = tokens
        self.pool.next_speech[index] = mel.to(self.pool.next_speech.dtype)
        return list(zip(states, tokens, mel, strict=True))

    def _turn_outputs(self, produced: list[tuple[CallState, Tensor, Tensor]]) -> list[EngineOutput]:
        if not produced:
            return []
        tokens = torch.stack([t for _, t, _ in produced]).tolist()  # the step's one host sync
        mels = torch.stack([m for _, _, m in produced]).float().cpu()  # (B', n_mel_out, n_mels)
        audio = self.vocoder(mels) if self.vocoder is not None else None  # (B', n_mel_out · hop)
        outputs: list[EngineOutput] = []
        for i, ((state, _, _), token) in enumerate(zip(produced, tokens, strict=True)):
            assert state.turn_id is not None
            state.tokens.append(token)
            state.steps_left -= 1
            outputs.append(
                TurnOutput(
                    state.call_id, state.turn_id, len(state.tokens) - 1, token, mels[i],
                    None if audio is None else audio[i],
                )
            )  # fmt: skip
            if token == EOS:
                outputs += self._finish(state, "eos")
            elif state.steps_left <= 0:
                outputs += self._finish(state, "length")
        return outputs

    def _state_of(self, slot: int) -> CallState:
        call_id = self.pool.owner(slot)
        assert call_id is not None, f"slot {slot} has no call"
        return self.calls[call_id]


class EngineThread:
    """Runs `core.run_busy_loop` on its own thread; `close()` stops and joins it."""

    def __init__(self, core: EngineCore, name: str = "speechlm-engine") -> None:
        self.core = core
        self._thread = threading.Thread(target=core.run_busy_loop, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout_s: float = 10.0) -> None:
        self.core.stop()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.error("engine thread did not stop within %.1f s", timeout_s)
