"""The shipped example calls (examples/audio) and the text and audio checks the integration tests share.

Plain functions and data rather than fixtures, because ``pytest.mark.parametrize`` needs the list of
questions while the tests are collected.
"""

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from voiceagent.audio import SAMPLE_RATE, float_to_pcm16, read_audio, resample, to_pipeline
from voiceagent.engines.cascade.asr import WhisperAsr
from voiceagent.engines.cascade.tts import HibariTts

REPO_ROOT = Path(__file__).resolve().parents[2]
AUDIO_DIR = REPO_ROOT / "examples" / "audio"

# Quieter than any syllable of the packaged voice, louder than its trimmed padding (about -40 dBFS).
_SPEECH_LEVEL = 300
# Below this an outbound frame carries no agent speech.
SILENT_PEAK = 100


@dataclass(frozen=True)
class Question:
    """One shipped caller utterance: what it says and which intent of the front-desk agent it asks."""

    name: str
    text: str
    intent: str

    def path(self, *, narrowband: bool = False) -> Path:
        """The 16 kHz file, or the 8 kHz one that went through G.711 mu-law."""
        return AUDIO_DIR / f"{self.name}{'-8k' if narrowband else ''}.wav"


def _load_questions() -> list[Question]:
    spec = json.loads((AUDIO_DIR / "questions.json").read_text(encoding="utf-8"))
    return [Question(q["name"], q["text"], q["intent"]) for q in spec["questions"]]


QUESTIONS = _load_questions()


def question(name: str) -> Question:
    """The shipped question called ``name``."""
    return next(q for q in QUESTIONS if q.name == name)


# ---- text ---------------------------------------------------------------------------------------

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]  # fmt: skip
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_TOKEN = re.compile(r"\$?\d+(?:\.\d+)?|[a-z]+(?:'[a-z]+)*")


def _spell(number: int) -> list[str]:
    """``number`` (0-999) as spoken words; larger numbers stay digits."""
    if number < 20:
        return [_ONES[number]]
    if number < 100:
        tens, ones = divmod(number, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return [_ONES[hundreds], "hundred"] + (_spell(rest) if rest else [])
    return [str(number)]


def _spell_amount(token: str) -> list[str]:
    # Whisper writes "four ninety-nine" as "$4.99" and "fifty dollars" as "$50".
    dollars = token.startswith("$")
    whole, _, cents = token.lstrip("$").partition(".")
    spoken = _spell(int(whole)) + (_spell(int(cents)) if cents else [])
    return spoken + (["dollars"] if dollars and not cents else [])


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, numbers spelt out as the agent's answers spell them."""
    tokens: list[str] = []
    for token in _TOKEN.findall(text.lower().replace("’", "'")):
        tokens += _spell_amount(token) if token[0] in "$0123456789" else [token]
    return tokens


def word_overlap(expected: str, actual: str) -> float:
    """Share of the words of ``expected`` (counted with repeats) that also occur in ``actual``."""
    want, got = Counter(words(expected)), Counter(words(actual))
    return sum((want & got).values()) / max(1, sum(want.values()))


def same_text(actual: str, expected: str) -> bool:
    """Equal once runs of whitespace are collapsed."""
    return " ".join(actual.split()) == " ".join(expected.split())


def is_strict_word_prefix(prefix: str, text: str) -> bool:
    """``prefix`` is the first few (not all, not none) whitespace-separated words of ``text``."""
    head, full = prefix.split(), text.split()
    return 0 < len(head) < len(full) and full[: len(head)] == head


# ---- audio --------------------------------------------------------------------------------------


def read_pcm(path: Path) -> npt.NDArray[np.int16]:
    """A file as the media layer takes it: 16 kHz mono PCM16."""
    return to_pipeline(read_audio(path))


def ms_to_samples(ms: float) -> int:
    return round(ms * SAMPLE_RATE / 1000)


def samples_to_ms(samples: int) -> float:
    return 1000.0 * samples / SAMPLE_RATE


def silence(ms: float) -> npt.NDArray[np.int16]:
    return np.zeros(ms_to_samples(ms), dtype=np.int16)


def speech_span(pcm: npt.NDArray[np.int16]) -> tuple[int, int]:
    """First and one-past-last sample louder than the voice's padding; (0, 0) for silence."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > _SPEECH_LEVEL)
    return (0, 0) if loud.size == 0 else (int(loud[0]), int(loud[-1]) + 1)


def peak(pcm: npt.NDArray[np.int16]) -> int:
    return int(np.abs(pcm.astype(np.int32)).max(initial=0))


def synthesize_pcm(tts: HibariTts, text: str) -> npt.NDArray[np.int16]:
    """``text`` in the packaged voice, cut to its speech, as 16 kHz PCM16."""
    pcm = float_to_pcm16(resample(tts.synthesize(text), tts.sample_rate, SAMPLE_RATE))
    start, end = speech_span(pcm)
    return pcm[start:end]


def transcribe(asr: WhisperAsr, pcm: npt.NDArray[np.int16], *, from_ms: float = 0.0) -> str:
    """What Whisper hears in 16 kHz ``pcm`` from ``from_ms`` on."""
    return asr.transcribe(pcm[ms_to_samples(from_ms) :])
