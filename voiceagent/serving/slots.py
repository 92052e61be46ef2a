"""Per-call slots in preallocated cache pools.

One `CallCache` of batch `max_slots` holds every call's decoder and cross-attention latents, one
`EncoderState` of the same batch holds every call's streaming-encoder state, and one front-end tail
per slot holds the audio not yet framed. A call owns one row of each for as long as it is admitted;
admission takes the lowest free row (so active rows stay packed at the front and a step can work on
a prefix view of the pools without copying), and a reused row is reset before the new call sees it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from voiceagent.errors import EngineError
from voiceagent.model import CallCache, EncoderState, SpeechLM

__all__ = ["SlotPool", "SlotsFullError"]


class SlotsFullError(EngineError):
    """Every slot is taken: the worker is at capacity."""


class SlotPool:
    """Owns the cache pools; hands out and takes back rows (slots). Not thread-safe: the step loop owns it."""

    def __init__(
        self,
        model: SpeechLM,
        max_slots: int,
        *,
        max_tokens: int,
        max_frames: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        if max_slots < 1:
            raise ValueError("max_slots must be at least 1")
        self.max_slots, self.max_tokens, self.max_frames = max_slots, max_tokens, max_frames
        self.cache: CallCache = model.new_cache(
            max_slots, max_tokens=max_tokens, max_frames=max_frames, device=device, dtype=dtype
        )
        self.encoder: EncoderState = model.encoder.init_state(max_slots, device=device, dtype=dtype)
        c = model.config
        # Audio not yet framed, per slot: (n_fft - hop + up to one hop,) float32 on the CPU.
        self._tail_samples = c.n_fft - c.hop_length
        self.frontend_tails = [torch.zeros(self._tail_samples) for _ in range(max_slots)]
        # What each slot feeds the decoder next: the last sampled token and the last speech frames.
        self.next_tokens = torch.zeros(max_slots, dtype=torch.long, device=device)  # (S,)
        self.next_speech = torch.zeros(max_slots, c.n_mel_out, c.n_mels, device=device, dtype=dtype)
        self._free = list(range(max_slots))
        self._owner: dict[int, str] = {}

    @property
    def active(self) -> int:
        return len(self._owner)

    @property
    def high_water(self) -> int:
        """One past the highest taken row: a step over rows `[0, high_water)` sees every call."""
        return max(self._owner, default=-1) + 1

    def owner(self, slot: int) -> str | None:
        return self._owner.get(slot)

    def admit(self, call_id: str) -> int:
        """Take the lowest free slot for `call_id` and reset its rows."""
        if not self._free:
            raise SlotsFullError(f"all {self.max_slots} slots are taken")
        slot = min(self._free)
        self._free.remove(slot)
        self._owner[slot] = call_id
        self.reset(slot)
        return slot

    def evict(self, slot: int) -> None:
        """Give the slot back; its rows are reset when it is next admitted."""
        if self._owner.pop(slot, None) is None:
            raise ValueError(f"slot {slot} is not taken")
        self._free.append(slot)

    def reset(self, slot: int) -> None:
        """Forget everything the slot held: caches, encoder state, front-end tail, decoder feedback."""
        rows = torch.tensor([slot], device=self.cache.self_lengths.device)
        self.cache.reset(rows)
        # Stale latents are masked by the lengths; zeroing them too makes a leak impossible to miss.
        self.cache.self_latents[slot].zero_()
        self.cache.cross_latents[slot].zero_()
        for t in (*self.encoder.conv_tails, *self.encoder.keys, *self.encoder.values):
            t[slot].zero_()
        self.encoder.n_frames[slot] = 0
        self.frontend_tails[slot] = torch.zeros(self._tail_samples)
        self.next_tokens[slot] = 0
        self.next_speech[slot].zero_()

    def encoder_rows(self, index: Tensor) -> EncoderState:
        """The encoder states of the slots in `index` (a gathered copy)."""
        return self.encoder.rows(index)

    def store_encoder_rows(self, index: Tensor, state: EncoderState) -> None:
        """Write advanced encoder states back into their slots."""
        pool = self.encoder
        for dst, src in zip(
            (*pool.conv_tails, *pool.keys, *pool.values),
            (*state.conv_tails, *state.keys, *state.values),
            strict=True,
        ):
            dst[index] = src
        pool.n_frames[index] = state.n_frames

    def view(self, rows: int, start: int = 0) -> CallCache:
        """The cache of slots `[start, rows)` as views: writes through them land in the pool."""
        c = self.cache
        r = slice(start, rows)
        return CallCache(c.self_latents[r], c.self_lengths[r], c.cross_latents[r], c.cross_lengths[r])
