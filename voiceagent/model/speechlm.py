"""The end-to-end speech LM: streaming encoder, MoE decoder with EALLQA cross-attention, two heads.

Driving it from a batched engine (batch dimension first everywhere; one row per call):

    cache = model.new_cache(batch)                        # per-call caches as explicit tensors
    frames, enc_state = model.encoder.encode_chunk(mel, enc_state)
    model.add_audio_frames(cache, frames, n_frames)       # only EALLQA latents are kept
    out = model.prefill(cache, tokens, n_tokens)          # whole prompt, one pass
    out = model.decode_step(cache, next_tokens, speech)   # one token per call, fixed shapes

`forward` is the training form (per-head cross keys/values, no cache); it equals prefill.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from voiceagent.model.config import SpeechLMConfig
from voiceagent.model.decoder import DecoderBlock
from voiceagent.model.encoder import SpeechEncoder
from voiceagent.model.layers import RMSNorm

__all__ = ["CallCache", "SpeechLM", "SpeechLMOutput"]


@dataclass
class CallCache:
    """Decoder caches for a batch of calls (row b = one call). Rows can be reset or moved by the engine."""

    self_latents: Tensor  # (B, L, T_max, d_self + rope_dim): self-attention latent and RoPE key per token
    self_lengths: Tensor  # (B,) long: tokens cached
    cross_latents: Tensor  # (B, L, F_max, d_c): EALLQA latent per encoder frame
    cross_lengths: Tensor  # (B,) long: encoder frames cached

    @property
    def nbytes(self) -> int:
        return self.self_latents.nbytes + self.cross_latents.nbytes

    def reset(self, rows: Tensor) -> None:
        """Forget the calls in `rows` (a slot is reused for a new call); stale latents stay masked."""
        self.self_lengths[rows] = 0
        self.cross_lengths[rows] = 0


@dataclass
class SpeechLMOutput:
    text_logits: Tensor  # (B, T, V), or (B, V) from decode_step
    mel: Tensor  # (B, T, n_mel_out, n_mels), or (B, n_mel_out, n_mels) from decode_step
    aux_loss: Tensor  # () MoE load-balancing loss, summed over layers


def _write_rows(cache: Tensor, layer: int, pos: Tensor, values: Tensor, valid: Tensor | None) -> None:
    """`cache[b, layer, pos[b, t]] = values[b, t]` for valid (b, t); `pos (B, T)`, `values (B, T, d)`."""
    rows = torch.arange(pos.shape[0], device=pos.device)[:, None].expand_as(pos)  # (B, T)
    if valid is None:
        cache[rows, layer, pos] = values.to(cache.dtype)
    else:
        cache[rows[valid], layer, pos[valid]] = values[valid].to(cache.dtype)


class SpeechLM(nn.Module):
    def __init__(self, config: SpeechLMConfig) -> None:
        super().__init__()
        c = self.config = config
        self.encoder = SpeechEncoder(c)
        self.embed = nn.Embedding(c.vocab_size, c.dec_dim)
        self.speech_in = nn.Linear(c.n_mel_out * c.n_mels, c.dec_dim, bias=False)
        self.blocks = nn.ModuleList(DecoderBlock(c) for _ in range(c.dec_layers))
        self.norm = RMSNorm(c.dec_dim, c.norm_eps)
        self.text_head = nn.Linear(c.dec_dim, c.vocab_size, bias=False)
        self.speech_head = nn.Sequential(
            nn.Linear(c.dec_dim, c.dec_dim), nn.GELU(), nn.Linear(c.dec_dim, c.n_mel_out * c.n_mels)
        )

    def _blocks(self) -> list[DecoderBlock]:
        return [b for b in self.blocks if isinstance(b, DecoderBlock)]

    # -- caches ---------------------------------------------------------------------------------

    def new_cache(
        self,
        batch: int,
        *,
        max_tokens: int | None = None,
        max_frames: int | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> CallCache:
        c = self.config
        device = device or self.norm.weight.device
        dtype = dtype or self.norm.weight.dtype
        n_tok, n_frm = max_tokens or c.max_text_tokens, max_frames or c.max_encoder_frames
        return CallCache(
            self_latents=torch.zeros(
                batch, c.dec_layers, n_tok, c.self_cache_dim, device=device, dtype=dtype
            ),
            self_lengths=torch.zeros(batch, dtype=torch.long, device=device),
            cross_latents=torch.zeros(batch, c.dec_layers, n_frm, c.d_latent, device=device, dtype=dtype),
            cross_lengths=torch.zeros(batch, dtype=torch.long, device=device),
        )

    def add_audio_frames(self, cache: CallCache, frames: Tensor, n_frames: Tensor) -> None:
        """Compress encoder `frames (B, F, enc_dim)` (the first `n_frames (B,)` of each row are real) into
        every layer's EALLQA latent and append them to the calls' caches."""
        f = frames.shape[1]
        pos = cache.cross_lengths[:, None] + torch.arange(f, device=frames.device)  # (B, F)
        valid = torch.arange(f, device=frames.device)[None, :] < n_frames[:, None]  # (B, F)
        if int((cache.cross_lengths + n_frames).max()) > cache.cross_latents.shape[2]:
            raise ValueError("encoder frames exceed the cache's max_frames")
        for i, block in enumerate(self._blocks()):
            _write_rows(cache.cross_latents, i, pos, block.cross_attn.compress(frames), valid)
        cache.cross_lengths += n_frames

    # -- decoding -------------------------------------------------------------------------------

    def _inputs(self, tokens: Tensor, speech: Tensor | None) -> Tensor:
        x: Tensor = self.embed(tokens)  # (B, T, d)
        if speech is not None:
            x = x + self.speech_in(speech.flatten(2).to(x.dtype))  # speech (B, T, n_mel_out, n_mels)
        return x

    def _heads(self, x: Tensor, aux: Tensor) -> SpeechLMOutput:
        h = self.norm(x)
        mel = self.speech_head(h).unflatten(-1, (self.config.n_mel_out, self.config.n_mels))
        return SpeechLMOutput(self.text_head(h), mel, aux)

    def _extend(
        self, cache: CallCache, x: Tensor, valid: Tensor | None, kv_len: int, frames_len: int
    ) -> SpeechLMOutput:
        """Run new tokens `x (B, T, d)` at positions self_lengths + t through the cached decoder."""
        t = x.shape[1]
        q_pos = cache.self_lengths[:, None] + torch.arange(t, device=x.device)  # (B, T)
        k_pos = torch.arange(kv_len, device=x.device)  # (S,)
        self_mask = k_pos[None, None, :] <= q_pos[:, :, None]  # (B, T, S)
        cross_mask = (
            torch.arange(frames_len, device=x.device)[None, :] < cache.cross_lengths[:, None]
        )  # (B, F)
        aux = x.new_zeros((), dtype=torch.float32)
        for i, block in enumerate(self._blocks()):
            _write_rows(cache.self_latents, i, q_pos, block.self_latents(x, q_pos), valid)
            x, layer_aux = block(
                x,
                q_pos,
                cache.self_latents[:, i, :kv_len],
                self_mask,
                cache.cross_latents[:, i, :frames_len],
                cross_mask,
            )
            aux = aux + layer_aux
        return self._heads(x, aux)

    @torch.no_grad()
    def prefill(
        self, cache: CallCache, tokens: Tensor, n_tokens: Tensor, speech: Tensor | None = None
    ) -> SpeechLMOutput:
        """Append a prompt: `tokens (B, T)` right-padded, `n_tokens (B,)` real per row (≥ 1 for the
        logits at `n_tokens - 1` to mean anything). Outputs `(B, T, ...)`; padded positions are junk."""
        end = cache.self_lengths + n_tokens
        kv_len = int(end.max())
        if kv_len > cache.self_latents.shape[2]:
            raise ValueError("tokens exceed the cache's max_tokens")
        valid = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < n_tokens[:, None]  # (B, T)
        frames_len = int(cache.cross_lengths.max())
        out = self._extend(cache, self._inputs(tokens, speech), valid, kv_len, frames_len)
        cache.self_lengths.copy_(end)
        return out

    @torch.no_grad()
    def decode_step(
        self,
        cache: CallCache,
        tokens: Tensor,
        speech: Tensor | None = None,
        *,
        kv_len: int | None = None,
        frames_len: int | None = None,
    ) -> SpeechLMOutput:
        """One token per call: `tokens (B,)`, `speech (B, n_mel_out, n_mels)` or None. Fixed shapes and
        no host sync, so it can be graph-captured. Self-attention reads the first `kv_len` cached
        positions and cross-attention the first `frames_len` latents (default: all); an engine passes
        buckets ≥ `max(self_lengths) + 1` and ≥ `max(cross_lengths)` to read less."""
        x = self._inputs(tokens[:, None], None if speech is None else speech[:, None])  # (B, 1, d)
        kv_len, frames_len = kv_len or cache.self_latents.shape[2], frames_len or cache.cross_latents.shape[2]
        out = self._extend(cache, x, None, kv_len, frames_len)
        cache.self_lengths += 1
        return SpeechLMOutput(out.text_logits[:, 0], out.mel[:, 0], out.aux_loss)

    # -- training -------------------------------------------------------------------------------

    def forward(
        self,
        tokens: Tensor,
        frames: Tensor,
        frame_lengths: Tensor,
        speech: Tensor | None = None,
        *,
        absorbed: bool = False,
    ) -> SpeechLMOutput:
        """Training form, no cache: `tokens (B, T)` from position 0, encoder `frames (B, F, enc_dim)` of which
        `frame_lengths (B,)` are real. Cross-attention in the per-head (training) form unless `absorbed`."""
        x = self._inputs(tokens, speech)  # (B, T, d)
        t = x.shape[1]
        pos = torch.arange(t, device=x.device)
        q_pos = pos[None, :].expand(x.shape[0], t)  # (B, T)
        self_mask = (pos[None, :] <= pos[:, None])[None].expand(x.shape[0], t, t)  # (B, T, T)
        cross_mask = (
            torch.arange(frames.shape[1], device=x.device)[None, :] < frame_lengths[:, None]
        )  # (B, F)
        aux = x.new_zeros((), dtype=torch.float32)
        for block in self._blocks():
            latents = block.cross_attn.compress(frames)  # (B, F, d_c)
            x, layer_aux = block(
                x, q_pos, block.self_latents(x, q_pos), self_mask, latents, cross_mask, absorbed=absorbed
            )
            aux = aux + layer_aux
        return self._heads(x, aux)
