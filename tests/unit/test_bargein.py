import pytest

from voiceagent.agents.definition import BargeInPolicy
from voiceagent.media.bargein import BargeInDetector, SnippetTranscript, is_backchannel

WINDOW = 32.0
POLICY = BargeInPolicy()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Uh-huh.", True),
        ("Okay, okay.", True),
        ("Mm-hmm", True),
        ("yeah right", True),
        ("嗯嗯", True),
        ("对", True),
        ("对对对", True),
        ("嗯好的呀", False),
        ("", True),
        ("Wait!", False),
        ("okay wait", False),
        ("No, that's wrong.", False),
    ],
)
def test_is_backchannel(text: str, expected: bool) -> None:
    assert is_backchannel(text, POLICY.backchannels) is expected


def _feed(
    detector: BargeInDetector, probabilities: list[float], *, start_ms: float = 0.0, echo: bool = False
):
    verdicts = []
    for i, p in enumerate(probabilities):
        t = start_ms + i * WINDOW
        verdict = detector.update(p, t, t + WINDOW, echo=echo)
        if verdict is not None:
            verdicts.append(verdict)
    return verdicts


def test_a_sure_window_pauses_at_once() -> None:
    d = BargeInDetector(POLICY)
    verdicts = _feed(d, [0.0, 0.95])
    assert [v.kind for v in verdicts] == ["pause"]
    assert verdicts[0].end_ms == 2 * WINDOW


def test_pauses_after_onset_and_stops_on_long_voice() -> None:
    d = BargeInDetector(POLICY)
    verdicts = _feed(d, [0.0, 0.7, 0.7] + [0.7] * 30)
    assert [v.kind for v in verdicts] == ["pause", "stop"]
    assert verdicts[0].kind == "pause"
    assert verdicts[0].onset_ms == WINDOW
    assert verdicts[0].end_ms == 3 * WINDOW  # two windows = 64 ms of voice
    assert verdicts[1].kind == "stop"
    assert verdicts[1].reason == "speech"
    assert d.state == "idle"


def test_echo_never_pauses() -> None:
    d = BargeInDetector(POLICY)
    assert _feed(d, [0.99] * 100, echo=True) == []


def test_click_resumes_and_short_utterance_asks_for_a_transcript() -> None:
    d = BargeInDetector(POLICY)
    click = _feed(d, [0.9, 0.9] + [0.0] * 10)
    assert [v.kind for v in click] == ["pause", "resume"]
    assert click[1].reason == "noise"
    d2 = BargeInDetector(POLICY)
    short = _feed(d2, [0.9] * 12 + [0.0] * 10)
    assert [v.kind for v in short] == ["pause", "classify"]
    assert d2.state == "classifying"


@pytest.mark.parametrize(
    ("heard", "kind"),
    [
        (SnippetTranscript("Uh-huh.", -0.2), "resume"),
        (SnippetTranscript("It has.", -0.6), "resume"),  # an unsure two-word guess is a sound
        (SnippetTranscript("Hold on.", -0.01), "stop"),
        (SnippetTranscript("Wait, what about Sundays?", -0.6), "stop"),  # unsure but many words
    ],
)
def test_transcript_decides_a_short_utterance(heard: SnippetTranscript, kind: str) -> None:
    d = BargeInDetector(POLICY)
    _feed(d, [0.9] * 12 + [0.0] * 10)
    verdict = d.classified(heard, 1000.0)
    assert verdict is not None
    assert verdict.kind == kind


def test_voice_while_classifying_is_an_interruption_and_late_transcript_is_ignored() -> None:
    d = BargeInDetector(POLICY)
    _feed(d, [0.9] * 12 + [0.0] * 10)
    verdicts = _feed(d, [0.9], start_ms=2000)
    assert [v.kind for v in verdicts] == ["stop"]
    assert d.classified(SnippetTranscript("Uh-huh."), 2100) is None


def test_an_undecided_pause_ends_in_a_stop() -> None:
    d = BargeInDetector(BargeInPolicy(max_pause_ms=500, interrupt_ms=5000, resume_gap_ms=2000))
    verdicts = _feed(d, [0.9, 0.9] + [0.4] * 20)
    assert [v.kind for v in verdicts] == ["pause", "stop"]
    assert verdicts[1].reason == "undecided"


def test_prompt_primes_the_transcriber_with_ascii_backchannels() -> None:
    prompt = BargeInDetector(POLICY).prompt
    assert "Uh-huh" in prompt
    assert "嗯" not in prompt


def test_disabled_policy_decides_nothing() -> None:
    d = BargeInDetector(BargeInPolicy(enabled=False))
    assert _feed(d, [0.9] * 50) == []
