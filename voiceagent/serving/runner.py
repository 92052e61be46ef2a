"""The per-step decode: eager everywhere, CUDA-graph-captured at bucketed shapes on a GPU.

On CUDA the model runs in bf16 and each `(rows, kv_len, frames_len)` bucket gets one captured
graph that reads the pool's prefix views in place (their addresses never change), so a step is one
graph replay. Capture needs a step with no host sync; the MoE layer's grouped dispatch reads the
per-expert token counts on the host (`counts.tolist()`), so while capturing we route every MoE layer
through its dense form (every expert on every token, gated): at decode batch sizes where the tokens
hit most experts anyway, that reads the same weight bytes. On the CPU the same code runs eagerly in fp32.
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import Tensor

from voiceagent.model import CallCache, MoEFeedForward, SpeechLM, SpeechLMOutput

__all__ = ["DecodeRunner", "serving_dtype", "use_sync_free_moe"]

logger = logging.getLogger(__name__)


def serving_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a GPU, fp32 on the CPU (CPU bf16 matmuls are slower than fp32 on most machines)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _moe_sync_free(moe: MoEFeedForward, x: Tensor) -> tuple[Tensor, Tensor]:
    # No per-expert token counts on the host, so the step can be captured; no aux loss at inference.
    return moe.forward_dense(x), x.new_zeros((), dtype=torch.float32)


def use_sync_free_moe(model: SpeechLM) -> None:
    """Route every MoE layer of `model` through its dense, sync-free form (same outputs, no aux loss)."""
    for module in model.modules():
        if isinstance(module, MoEFeedForward):
            setattr(module, "forward", functools.partial(_moe_sync_free, module))  # noqa: B010


class _Graph:
    def __init__(self, graph: torch.cuda.CUDAGraph, out: SpeechLMOutput) -> None:
        self.graph, self.out = graph, out


class DecodeRunner:
    """`decode(cache, tokens, speech, kv_len, frames_len)`: `SpeechLM.decode_step` on pool views."""

    def __init__(self, model: SpeechLM, *, use_graphs: bool | None = None, max_graphs: int = 64) -> None:
        self.model = model
        device = model.norm.weight.device
        self.use_graphs = device.type == "cuda" if use_graphs is None else use_graphs
        self.max_graphs = max_graphs
        self._graphs: dict[tuple[int, int, int, int], _Graph] = {}
        if self.use_graphs:
            use_sync_free_moe(model)

    def decode(
        self, cache: CallCache, tokens: Tensor, speech: Tensor, *, kv_len: int, frames_len: int
    ) -> SpeechLMOutput:
        if not self.use_graphs:
            return self.model.decode_step(cache, tokens, speech, kv_len=kv_len, frames_len=frames_len)
        key = (cache.self_latents.data_ptr(), tokens.shape[0], kv_len, frames_len)
        graph = self._graphs.get(key)
        if graph is None:
            if len(self._graphs) >= self.max_graphs:  # bound the graphs' private memory pools
                self._graphs.pop(next(iter(self._graphs)))
            graph = self._graphs[key] = self._capture(cache, tokens, speech, kv_len, frames_len)
        graph.graph.replay()
        return graph.out

    def _capture(
        self, cache: CallCache, tokens: Tensor, speech: Tensor, kv_len: int, frames_len: int
    ) -> _Graph:
        """Warm up on a side stream, then capture one decode step. Both run the step for real, so the
        lengths are put back afterwards (the latents they wrote sit past the lengths: masked)."""
        saved = cache.self_lengths.clone()
        stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.model.decode_step(cache, tokens, speech, kv_len=kv_len, frames_len=frames_len)
                cache.self_lengths.copy_(saved)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self.model.decode_step(cache, tokens, speech, kv_len=kv_len, frames_len=frames_len)
        cache.self_lengths.copy_(saved)
        logger.info(
            "captured decode graph rows=%d kv_len=%d frames_len=%d", tokens.shape[0], kv_len, frames_len
        )
        return _Graph(graph, out)
