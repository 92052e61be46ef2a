import dataclasses

import pytest

torch = pytest.importorskip("torch")

from voiceagent.model.config import preset  # noqa: E402
from voiceagent.model.decoder import LatentSelfAttention  # noqa: E402

CONFIG = dataclasses.replace(
    preset("tiny"), dec_dim=96, dec_heads=3, head_dim=32, d_self_latent=40, rope_dim=8
)


def _setup() -> tuple[LatentSelfAttention, "torch.Tensor", "torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    torch.manual_seed(0)
    attn = LatentSelfAttention(CONFIG)
    x = torch.randn(2, 9, 96)
    pos = torch.arange(9)[None].expand(2, 9)  # (B, T)
    cached = attn.compress(x, pos)  # (B, T, d_self + R)
    mask = (torch.arange(9)[None, :] <= torch.arange(9)[:, None])[None].expand(2, 9, 9)
    return attn, x, pos, cached, mask


def test_absorbed_self_attention_equals_per_head_form() -> None:
    attn, x, pos, cached, mask = _setup()
    with torch.no_grad():
        absorbed = attn(x, pos, cached, mask)
        per_head = attn(x, pos, cached, mask, absorbed=False)
    assert cached.shape == (2, 9, 48)
    assert float((absorbed - per_head).norm() / per_head.norm()) <= 1e-5


def test_scores_depend_on_relative_position_only() -> None:
    # Shift every position by 5: RoPE makes scores, hence outputs, unchanged.
    attn, x, pos, _, mask = _setup()
    with torch.no_grad():
        a = attn(x, pos, attn.compress(x, pos), mask)
        b = attn(x, pos + 5, attn.compress(x, pos + 5), mask)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_self_attention_is_causal() -> None:
    attn, x, pos, _, mask = _setup()
    changed = x.clone()
    changed[:, 6:] += 1.0
    with torch.no_grad():
        a = attn(x, pos, attn.compress(x, pos), mask)
        b = attn(changed, pos, attn.compress(changed, pos), mask)
    torch.testing.assert_close(a[:, :6], b[:, :6])
