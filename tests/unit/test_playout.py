import numpy as np

from voiceagent.media.playout import PlayoutQueue


def _tone(n: int, value: int = 1000) -> np.ndarray:
    return np.full(n, value, dtype=np.int16)


def test_pull_counts_only_real_samples_per_item() -> None:
    q = PlayoutQueue(frame_samples=320)
    q.push("a", _tone(500, 1))
    q.push("b", _tone(300, 2))
    f1, f2, f3 = q.pull(), q.pull(), q.pull()
    assert (f1 == 1).all()
    assert (f2[:180] == 1).all()
    assert (f2[180:] == 2).all()
    assert (f3[:160] == 2).all()
    assert (f3[160:] == 0).all()
    assert q.played_samples("a") == 500
    assert q.played_samples("b") == 300
    assert q.played_ms("b") == 300 / 16
    assert q.pending_samples == 0


def test_silence_when_empty_and_current_item_tracks_playback() -> None:
    q = PlayoutQueue()
    assert not q.pull().any()
    assert q.current_item is None
    q.push("x", _tone(320))
    q.pull()
    assert q.current_item == "x"
    q.pull()
    assert q.current_item is None


def test_flush_drops_everything_queued_and_stops_at_once() -> None:
    q = PlayoutQueue()
    q.push("a", _tone(16000))
    q.pull()
    q.pull()
    dropped = q.flush()
    assert dropped == 16000 - 640
    assert q.played_samples("a") == 640
    assert not q.pull().any()
    assert q.pending_samples == 0


def test_empty_push_is_ignored() -> None:
    q = PlayoutQueue()
    q.push("a", np.zeros(0, dtype=np.int16))
    assert q.pending_samples == 0
