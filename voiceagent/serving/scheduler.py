"""Which calls do what in the next step: the scheduler and the per-call state it reads.

The engine core keeps one `CallState` per admitted call and, between steps, asks
`Scheduler.schedule(calls)` for a `StepPlan`. The plan only names slots and cache buckets; running
it is the core's job, and the core updates the states from the results (vLLM v1's split between
`Scheduler.schedule()` and the model runner).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CallState", "Scheduler", "StepPlan", "bucket"]

Phase = Literal["listening", "prefill", "speaking"]


def bucket(n: int, *, granule: int, limit: int) -> int:
    """`n` rounded up to a multiple of `granule` (at least one granule), at most `limit`."""
    return min(limit, max(granule, -(-n // granule) * granule))


def batch_bucket(n: int, limit: int) -> int:
    """Batch sizes the decode step is compiled for: powers of two, then `limit`."""
    size = 1
    while size < n:
        size *= 2
    return min(size, limit)


@dataclass
class CallState:
    """One admitted call as the scheduler sees it. Lengths mirror the device cache (no host sync)."""

    call_id: str
    slot: int
    phase: Phase = "listening"
    mel_frames: int = 0  # log-mel frames waiting for the encoder
    self_len: int = 0  # decoder tokens cached
    cross_len: int = 0  # encoder frames cached
    turn_id: str | None = None  # the running turn
    last_turn_id: str | None = None  # the turn that ran last (a truncation may still name it)
    prompt: list[int] = field(default_factory=list)  # tokens the next prefill appends
    turn_start: int = 0  # self_len once the turn's prompt is in: where the reply's tokens begin
    steps_left: int = 0  # decode steps the turn may still take
    tokens: list[int] = field(default_factory=list)  # the reply's tokens so far


@dataclass(frozen=True)
class StepPlan:
    """What one step runs. Slots are rows of the pools; each tuple is in ascending slot order.

    - `encode`: slots that advance the encoder by one chunk (`chunk_mel_frames` mel frames → one
      12.5 Hz frame) and append its EALLQA latents;
    - `prefill`: slots whose turn prompt is appended in one pass; the pass gives the reply's first
      token and speech frames;
    - `decode`: slots that advance the decoder by one token and one block of speech frames;
    - `rows`: the decode pass runs on slot rows `[0, rows)` (a batch-size bucket); the prefill pass
      on the rows from the first to the last slot in `prefill`;
    - `kv_len` / `frames_len`: cache buckets the decode reads (≥ every row's need).
    A slot is in at most one of `prefill` and `decode`; it may be in `encode` as well (it listens
    while it speaks), and its chunk is encoded before the prefill or decode reads the cache.
    """

    encode: tuple[int, ...] = ()
    prefill: tuple[int, ...] = ()
    decode: tuple[int, ...] = ()
    rows: int = 0
    kv_len: int = 0
    frames_len: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.encode or self.prefill or self.decode)


class Scheduler:
    """First come, first served within fixed per-step budgets.

    Contract of `schedule`: it does not mutate the states; every listening or speaking call with a
    whole chunk of audio waiting is in `encode` (real time needs one chunk per call per 80 ms; a
    backlog drains at one chunk per step); a call in `prefill` phase is planned once its audio is
    encoded (at most one chunk left, which this step encodes) and while the step's prefill budget
    lasts; every speaking call is in `decode`.
    """

    def __init__(
        self,
        *,
        chunk_mel_frames: int,
        max_slots: int,
        max_tokens: int,
        max_frames: int,
        max_prefill_tokens: int = 512,
        kv_granule: int = 64,
        frames_granule: int = 64,
        bucket_rows: bool = True,
    ) -> None:
        self.chunk_mel_frames = chunk_mel_frames
        self.max_slots, self.max_tokens, self.max_frames = max_slots, max_tokens, max_frames
        self.max_prefill_tokens = max_prefill_tokens
        self.kv_granule, self.frames_granule = kv_granule, frames_granule
        # Batch-size buckets bound the number of captured CUDA graphs; eager runs need none.
        self.bucket_rows = bucket_rows

    def schedule(self, calls: Iterable[CallState]) -> StepPlan:
        ordered = sorted(calls, key=lambda s: s.slot)
        encode = [s.slot for s in ordered if s.mel_frames >= self.chunk_mel_frames]
        budget = self.max_prefill_tokens
        prefill: list[int] = []
        for s in ordered:
            ready = s.mel_frames < 2 * self.chunk_mel_frames
            if s.phase == "prefill" and ready and (not prefill or len(s.prompt) <= budget):
                prefill.append(s.slot)
                budget -= len(s.prompt)
        decode = [s.slot for s in ordered if s.phase == "speaking"]
        if not (prefill or decode):
            return StepPlan(encode=tuple(encode))
        rows = max(prefill + decode) + 1
        if self.bucket_rows:
            rows = batch_bucket(rows, self.max_slots)
        touched = [s for s in ordered if s.slot < rows]
        # Every row in the batch writes one position (idle rows are masked out), so read one past it.
        need_kv = max(s.self_len + len(s.prompt) + 1 for s in touched)
        encoding = set(encode)
        need_frames = max(s.cross_len + (s.slot in encoding) for s in touched)
        return StepPlan(
            encode=tuple(encode),
            prefill=tuple(prefill),
            decode=tuple(decode),
            rows=rows,
            kv_len=bucket(need_kv, granule=self.kv_granule, limit=self.max_tokens),
            frames_len=bucket(need_frames, granule=self.frames_granule, limit=self.max_frames),
        )
