import dataclasses

import pytest

torch = pytest.importorskip("torch")

from voiceagent.model.config import preset  # noqa: E402
from voiceagent.model.encoder import EncoderState, SpeechEncoder  # noqa: E402


def _encoder(window: int = 6) -> SpeechEncoder:
    torch.manual_seed(0)
    config = dataclasses.replace(preset("tiny"), enc_layers=2, enc_window_frames=window)
    return SpeechEncoder(config).eval()


def test_subsampling_gives_12_5_hz() -> None:
    encoder = _encoder()
    assert encoder.config.encoder_frame_rate_hz == 12.5
    with torch.no_grad():
        assert encoder(torch.randn(1, 100, 80)).shape == (1, 13, 256)  # ceil(100 / 8)


@pytest.mark.parametrize("chunk", [1, 5, 8, 24])
def test_chunked_encoding_equals_whole_turn(chunk: int) -> None:
    # 160 mel frames → 20 encoder frames, well past the 6-frame attention window.
    encoder = _encoder()
    mel = torch.randn(2, 160, 80)
    with torch.no_grad():
        whole = encoder(mel)
        state = encoder.init_state(2)
        parts = []
        for start in range(0, mel.shape[1], chunk):
            frames, state = encoder.encode_chunk(mel[:, start : start + chunk], state)
            parts.append(frames)
    assert state.n_frames.tolist() == [20, 20]
    torch.testing.assert_close(torch.cat(parts, dim=1), whole, rtol=1e-5, atol=1e-5)


def test_output_is_causal() -> None:
    encoder = _encoder()
    mel = torch.randn(1, 80, 80)
    changed = mel.clone()
    changed[:, 40:] += 1.0  # mel frame 40 feeds encoder frame 5 onwards
    with torch.no_grad():
        a, b = encoder(mel), encoder(changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5], b[:, 5])


def test_streams_started_at_different_times_batch_like_alone() -> None:
    # Two streams in one batch whose states have seen different amounts of audio.
    encoder = _encoder()
    early, late = torch.randn(1, 64, 80), torch.randn(1, 16, 80)
    with torch.no_grad():
        _, s_early = encoder.encode_chunk(early[:, :48], encoder.init_state(1))
        alone_early, _ = encoder.encode_chunk(early[:, 48:], s_early)
        alone_late, _ = encoder.encode_chunk(late, encoder.init_state(1))
        joined = EncoderState.cat([s_early, encoder.init_state(1)])
        batched, _ = encoder.encode_chunk(torch.cat([early[:, 48:], late]), joined)
    torch.testing.assert_close(batched[:1], alone_early, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched[1:], alone_late, rtol=1e-5, atol=1e-5)
    assert joined.rows(torch.tensor([1])).n_frames.tolist() == [0]
