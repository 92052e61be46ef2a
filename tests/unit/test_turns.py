from voiceagent.media.turns import TurnDetector

WINDOW_MS = 32.0


def _feed(detector: TurnDetector, probabilities: list[float]) -> list[tuple[str, float]]:
    out = []
    for i, p in enumerate(probabilities):
        for e in detector.update(p, i * WINDOW_MS, (i + 1) * WINDOW_MS):
            out.append((e.kind, e.at_ms))
    return out


def test_onset_needs_min_speech_and_reports_onset_time() -> None:
    d = TurnDetector(threshold=0.5, min_speech_ms=96, hangover_ms=500)
    events = _feed(d, [0.0, 0.0, 0.9, 0.9, 0.9, 0.9])
    assert events == [("speech_started", 2 * WINDOW_MS)]
    assert d.speaking


def test_click_shorter_than_min_speech_is_ignored() -> None:
    d = TurnDetector(threshold=0.5, min_speech_ms=100, hangover_ms=500)
    assert _feed(d, [0.0, 0.9, 0.9, 0.1, 0.0, 0.9, 0.0]) == []
    assert not d.speaking


def test_end_of_speech_is_last_voiced_window_after_hangover() -> None:
    d = TurnDetector(threshold=0.5, min_speech_ms=64, hangover_ms=320)
    probs = [0.9] * 10 + [0.0] * 9 + [0.0]
    events = _feed(d, probs)
    assert events == [("speech_started", 0.0), ("speech_stopped", 10 * WINDOW_MS)]


def test_pause_shorter_than_hangover_keeps_the_turn_open() -> None:
    d = TurnDetector(threshold=0.5, min_speech_ms=64, hangover_ms=500)
    probs = [0.9] * 10 + [0.0] * 12 + [0.9] * 5 + [0.0] * 16
    events = _feed(d, probs)
    assert [k for k, _ in events] == ["speech_started", "speech_stopped"]
    assert events[1][1] == 27 * WINDOW_MS


def test_hysteresis_keeps_speech_through_dips_above_release() -> None:
    d = TurnDetector(threshold=0.5, min_speech_ms=64, hangover_ms=100)
    events = _feed(d, [0.9, 0.9] + [0.4] * 20)
    assert [k for k, _ in events] == ["speech_started"]
    assert d.silence_ms == 0.0


def test_end_of_turn_hook_can_end_early_or_hold_the_floor() -> None:
    asked: list[tuple[float, float]] = []

    def early(quiet_ms: float, turn_ms: float) -> bool | None:
        asked.append((quiet_ms, turn_ms))
        return True if quiet_ms >= 128 else None

    d = TurnDetector(threshold=0.5, min_speech_ms=64, hangover_ms=500, end_of_turn=early)
    events = _feed(d, [0.9] * 10 + [0.0] * 5)
    assert events[-1] == ("speech_stopped", 10 * WINDOW_MS)
    assert asked[0] == (WINDOW_MS, 10 * WINDOW_MS)

    def hold(quiet_ms: float, turn_ms: float) -> bool | None:
        return False  # e.g. the words so far end mid-sentence

    d2 = TurnDetector(threshold=0.5, min_speech_ms=64, hangover_ms=300, end_of_turn=hold)
    probabilities = [0.9] * 10 + [0.0] * 120
    stopped_at = None
    for i, p in enumerate(probabilities):
        if d2.update(p, i * WINDOW_MS, (i + 1) * WINDOW_MS) and i >= 10:
            stopped_at = (i + 1) * WINDOW_MS
            break
    assert stopped_at is not None  # held past the 300 ms hangover, but not forever
    assert stopped_at - 10 * WINDOW_MS >= 3000
