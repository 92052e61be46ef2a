import dataclasses

import pytest

torch = pytest.importorskip("torch")

from voiceagent.model.config import preset  # noqa: E402
from voiceagent.model.speechlm import CallCache, SpeechLM  # noqa: E402

CONFIG = dataclasses.replace(preset("tiny"), dec_layers=2, enc_layers=1)
TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def model() -> SpeechLM:
    torch.manual_seed(0)
    return SpeechLM(CONFIG).eval()


def _call(seed: int, n_frames: int, n_tokens: int) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(n_frames, CONFIG.enc_dim, generator=g)
    tokens = torch.randint(0, CONFIG.vocab_size, (n_tokens,), generator=g)
    speech = torch.randn(n_tokens, CONFIG.n_mel_out, CONFIG.n_mels, generator=g)
    return frames, tokens, speech


def _pad(rows: list["torch.Tensor"]) -> "torch.Tensor":
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)


def _new(model: SpeechLM, batch: int) -> CallCache:
    return model.new_cache(batch, max_tokens=24, max_frames=16)


def test_batch_of_calls_equals_each_call_alone(model: SpeechLM) -> None:
    calls = [_call(0, 9, 6), _call(1, 3, 2), _call(2, 14, 5)]
    steps = torch.tensor([[5, 7, 9], [11, 13, 15]])  # next tokens per step, per call
    step_speech = torch.randn(2, 3, CONFIG.n_mel_out, CONFIG.n_mels)

    cache = _new(model, 3)
    model.add_audio_frames(cache, _pad([c[0] for c in calls]), torch.tensor([9, 3, 14]))
    batched = model.prefill(
        cache, _pad([c[1] for c in calls]), torch.tensor([6, 2, 5]), _pad([c[2] for c in calls])
    )
    batched_steps = [model.decode_step(cache, steps[i], step_speech[i]) for i in range(2)]
    assert cache.self_lengths.tolist() == [8, 4, 7]

    for b, (frames, tokens, speech) in enumerate(calls):
        alone_cache = _new(model, 1)
        model.add_audio_frames(alone_cache, frames[None], torch.tensor([len(frames)]))
        alone = model.prefill(alone_cache, tokens[None], torch.tensor([len(tokens)]), speech[None])
        n = len(tokens)
        torch.testing.assert_close(batched.text_logits[b, :n], alone.text_logits[0], **TOL)
        torch.testing.assert_close(batched.mel[b, :n], alone.mel[0], **TOL)
        for i in range(2):
            out = model.decode_step(alone_cache, steps[i, b : b + 1], step_speech[i, b : b + 1])
            torch.testing.assert_close(batched_steps[i].text_logits[b], out.text_logits[0], **TOL)
            torch.testing.assert_close(batched_steps[i].mel[b], out.mel[0], **TOL)


def test_cached_inference_equals_training_forward(model: SpeechLM) -> None:
    frames, tokens, speech = _call(3, 10, 7)
    with torch.no_grad():
        training = model(tokens[None], frames[None], torch.tensor([10]), speech[None])
        absorbed = model(tokens[None], frames[None], torch.tensor([10]), speech[None], absorbed=True)
    cache = _new(model, 1)
    model.add_audio_frames(cache, frames[None], torch.tensor([10]))
    prefill = model.prefill(cache, tokens[None, :4], torch.tensor([4]), speech[None, :4])
    # The last step reads only buckets of the caches (8 ≥ 7 positions, all 10 frames), as an engine would.
    steps = [
        model.decode_step(
            cache,
            tokens[None, t],
            speech[None, t],
            kv_len=8 if t == 6 else None,
            frames_len=10 if t == 6 else None,
        )
        for t in range(4, 7)
    ]
    torch.testing.assert_close(absorbed.text_logits, training.text_logits, **TOL)
    torch.testing.assert_close(prefill.text_logits[0], training.text_logits[0, :4], **TOL)
    for i, out in enumerate(steps):
        torch.testing.assert_close(out.text_logits[0], training.text_logits[0, 4 + i], **TOL)
        torch.testing.assert_close(out.mel[0], training.mel[0, 4 + i], **TOL)


def test_audio_arriving_between_steps_is_attended(model: SpeechLM) -> None:
    frames, tokens, _ = _call(4, 12, 3)
    one = _new(model, 1)
    model.add_audio_frames(one, frames[None], torch.tensor([12]))
    two = _new(model, 1)
    model.add_audio_frames(two, frames[None, :5], torch.tensor([5]))
    model.add_audio_frames(two, frames[None, 5:], torch.tensor([7]))
    a = model.prefill(one, tokens[None], torch.tensor([3]))
    b = model.prefill(two, tokens[None], torch.tensor([3]))
    torch.testing.assert_close(a.text_logits, b.text_logits, **TOL)
    assert two.cross_lengths.tolist() == [12]


def test_output_shapes_and_cache_size(model: SpeechLM) -> None:
    cache = _new(model, 2)
    assert cache.self_latents.shape == (2, 2, 24, CONFIG.d_self_latent + CONFIG.rope_dim)
    assert cache.cross_latents.shape == (2, 2, 16, CONFIG.d_latent)
    assert cache.nbytes == 4 * 2 * 2 * (24 * CONFIG.self_cache_dim + 16 * CONFIG.d_latent)
    out = model.decode_step(cache, torch.tensor([1, 2]))
    assert out.text_logits.shape == (2, CONFIG.vocab_size)
    assert out.mel.shape == (2, CONFIG.n_mel_out, CONFIG.n_mels)
    cache.reset(torch.tensor([0]))
    assert cache.self_lengths.tolist() == [0, 1]


def test_cache_overflow_is_refused(model: SpeechLM) -> None:
    cache = _new(model, 1)
    with pytest.raises(ValueError, match="max_tokens"):
        model.prefill(cache, torch.zeros(1, 25, dtype=torch.long), torch.tensor([25]))
    with pytest.raises(ValueError, match="max_frames"):
        model.add_audio_frames(cache, torch.zeros(1, 17, CONFIG.enc_dim), torch.tensor([17]))


def test_training_forward_backpropagates(model: SpeechLM) -> None:
    frames, tokens, speech = _call(5, 6, 5)
    train = SpeechLM(CONFIG)
    out = train(tokens[None], frames[None], torch.tensor([6]), speech[None])
    loss = torch.nn.functional.cross_entropy(out.text_logits[0, :-1], tokens[1:]) + out.mel.square().mean()
    (loss + 0.01 * out.aux_loss).backward()
    grads = [p.grad for p in train.parameters() if p.requires_grad and p.grad is not None]
    assert len(grads) > 0
    assert train.blocks[0].cross_attn.w_uk.grad is not None  # type: ignore[union-attr]
