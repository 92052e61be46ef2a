import pytest

torch = pytest.importorskip("torch")

from voiceagent.model.eallqa import EALLQACrossAttention  # noqa: E402


def _relative_error(a: "torch.Tensor", b: "torch.Tensor") -> float:
    return float((a - b).norm() / b.norm())


def _setup() -> tuple[EALLQACrossAttention, "torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    torch.manual_seed(0)
    attn = EALLQACrossAttention(d_model=96, enc_dim=80, n_heads=6, head_dim=16, d_latent=32)
    x = torch.randn(3, 5, 96)  # (B, T, d_model) decoder queries
    frames = torch.randn(3, 11, 80)  # (B, S, enc_dim) encoder states
    lengths = torch.tensor([11, 4, 7])
    mask = torch.arange(11)[None, :] < lengths[:, None]  # (B, S)
    return attn, x, attn.compress(frames), mask


def test_absorbed_form_equals_multi_head_form() -> None:
    attn, x, latents, mask = _setup()
    with torch.no_grad():
        training = attn.forward_training(x, latents, mask)
        absorbed = attn(x, latents, mask)
    assert absorbed.shape == (3, 5, 96)
    assert _relative_error(absorbed, training) <= 1e-5


def test_padding_frames_are_ignored() -> None:
    attn, x, latents, mask = _setup()
    garbage = latents.clone()
    garbage[~mask] = 1e3
    with torch.no_grad():
        torch.testing.assert_close(attn(x, garbage, mask), attn(x, latents, mask))
        # Each call alone (no padding at all) gives the same rows.
        alone = attn(x[1:2], latents[1:2, :4], mask[1:2, :4])
        torch.testing.assert_close(attn(x, latents, mask)[1:2], alone, rtol=1e-5, atol=1e-6)


def test_call_without_frames_gets_zero_context() -> None:
    attn, x, latents, _ = _setup()
    empty = torch.zeros(3, 11, dtype=torch.bool)
    with torch.no_grad():
        out = attn(x, latents, empty)
    assert torch.isfinite(out).all()
    assert out.abs().max() == 0


def test_only_the_latent_is_per_frame_state() -> None:
    _, _, latents, _ = _setup()
    assert latents.shape == (3, 11, 32)  # (B, S, d_c): nothing per head
