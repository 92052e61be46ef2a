"""``voiceagent call`` and ``voiceagent models`` as a user runs them: a subprocess on the real models."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voiceagent.audio import SAMPLE_RATE, read_audio, resample, write_wav
from voiceagent.engines.cascade.asr import WhisperAsr

from .corpus import (
    QUESTIONS,
    REPO_ROOT,
    SILENT_PEAK,
    Question,
    is_strict_word_prefix,
    ms_to_samples,
    peak,
    question,
    read_pcm,
    same_text,
    samples_to_ms,
    silence,
    speech_span,
    transcribe,
    word_overlap,
    words,
)

pytestmark = pytest.mark.slow

_TIMEOUT_S = 120
_MIN_OVERLAP = 0.6


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voiceagent", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )


def call_json(audio: Path, out: Path, *options: str) -> dict[str, Any]:
    """``voiceagent [options] call AUDIO --out OUT --json --fast``, which must succeed."""
    proc = run_cli(*options, "call", str(audio), "--out", str(out), "--json", "--fast")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def assert_refused(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit status 2 and a one-line-per-problem message, never a traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: "), proc.stderr
    assert proc.stdout == ""
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


# ---- answering the shipped questions -------------------------------------------------------------

_CALLS = [pytest.param(q, False, id=q.name) for q in QUESTIONS] + [
    pytest.param(question(name), True, id=f"{name}-8k") for name in ("opening-hours", "shipping")
]


@pytest.mark.parametrize(("asked", "narrowband"), _CALLS)
def test_call_answers_the_question_with_its_faq_answer(
    asked: Question,
    narrowband: bool,
    tmp_path: Path,
    answers: dict[str, str],
    transcriber: WhisperAsr,
) -> None:
    audio = asked.path(narrowband=narrowband)
    reply_path = tmp_path / "reply.wav"
    report = call_json(audio, reply_path)
    expected = answers[asked.intent]

    first_audio_ms = report["first_audio_ms"]
    assert isinstance(first_audio_ms, int | float)
    assert first_audio_ms > 0
    assert isinstance(report["turns"], list)
    assert len(report["turns"]) == 1, report["turns"]
    assert word_overlap(asked.text, report["user_text"]) >= _MIN_OVERLAP, report["user_text"]
    assert same_text(report["reply_text"], expected), report["reply_text"]

    # The acceptance check: what the caller hears, transcribed by other ears, is the FAQ answer.
    caller, reply = read_audio(audio), read_audio(reply_path)
    assert reply.sample_rate == caller.sample_rate == (8000 if narrowband else 16000)
    assert reply.channels == 1
    assert reply.duration_s >= caller.duration_s
    heard = transcribe(transcriber, read_pcm(reply_path), from_ms=report["turns"][0]["speech_end_ms"])
    assert word_overlap(expected, heard) >= _MIN_OVERLAP, heard


def test_text_output_names_caller_and_agent(answers: dict[str, str]) -> None:
    asked = question("payment")
    proc = run_cli("call", str(asked.path()), "--fast")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "warning:" not in proc.stderr
    lines = proc.stdout.splitlines()
    caller = [line.removeprefix("caller:") for line in lines if line.startswith("caller:")]
    agent = [line.removeprefix("agent:") for line in lines if line.startswith("agent:")]
    assert len(caller) == len(agent) == 1, proc.stdout
    assert word_overlap(asked.text, caller[0]) >= _MIN_OVERLAP
    assert " ".join(answers[asked.intent].split()) in " ".join(agent[0].split())
    assert "[first audio" in agent[0]


def test_two_questions_in_one_call_get_two_answers(tmp_path: Path, answers: dict[str, str]) -> None:
    first, second = question("opening-hours"), question("payment")
    # Long enough for the first answer (about 8.5 s) to finish; a shorter gap would be a barge-in.
    gap_ms = 10_000
    audio = tmp_path / "two.wav"
    caller = np.concatenate([read_pcm(first.path()), silence(gap_ms), read_pcm(second.path())])
    write_wav(audio, caller, 16000)
    report = call_json(audio, tmp_path / "reply.wav")

    turns = report["turns"]
    assert len(turns) == 2, turns
    for turn, asked in zip(turns, (first, second), strict=True):
        assert word_overlap(asked.text, turn["user_text"]) >= _MIN_OVERLAP, turn["user_text"]
        assert same_text(turn["reply_text"], answers[asked.intent]), turn["reply_text"]
        assert not turn["interrupted"]
        assert turn["first_audio_ms"] > 0
    assert turns[0]["speech_end_ms"] < turns[1]["speech_start_ms"]


def test_models_lists_the_default_models_verified() -> None:
    proc = run_cli("models", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    for name, kind in (("whisper-tiny.en", "asr"), ("hibari-heart", "tts"), ("silero-vad", "vad")):
        assert rows[name]["kind"] == kind
        assert rows[name]["state"] == "verified", rows[name]
        assert rows[name]["path"] is not None
        assert Path(rows[name]["path"]).exists()


# ---- input that is not what we hoped for ----------------------------------------------------------


def test_missing_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.wav"
    assert_refused(run_cli("call", str(missing), "--fast"), str(missing), "not found")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"this is not audio\n", "is not a readable audio file", id="text"),
        pytest.param(b"", "is empty", id="empty"),
    ],
)
def test_file_that_is_not_audio_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    fake = tmp_path / "x.wav"
    fake.write_bytes(content)
    assert_refused(run_cli("call", str(fake), "--fast"), str(fake), message)


def test_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "calls.wav"
    folder.mkdir()
    assert_refused(run_cli("call", str(folder), "--fast"), str(folder), "is a directory")


def test_silence_is_answered_with_a_warning_and_no_turns(tmp_path: Path) -> None:
    audio, reply_path = tmp_path / "silence.wav", tmp_path / "reply.wav"
    write_wav(audio, silence(3000), 16000)
    report = call_json(audio, reply_path)
    assert report["turns"] == []
    assert report["user_text"] == report["reply_text"] == ""
    assert report["first_audio_ms"] is None
    assert any("no caller speech" in warning for warning in report["warnings"]), report["warnings"]
    assert peak(read_pcm(reply_path)) < SILENT_PEAK


def test_48k_stereo_is_answered_and_the_reply_is_48k_mono(tmp_path: Path, answers: dict[str, str]) -> None:
    asked = question("opening-hours")
    mono = resample(read_pcm(asked.path()), SAMPLE_RATE, 48000)
    audio, reply_path = tmp_path / "stereo48k.wav", tmp_path / "reply.wav"
    write_wav(audio, np.stack([mono, mono], axis=1), 48000)
    report = call_json(audio, reply_path)
    assert report["input"]["sample_rate"] == 48000
    assert report["input"]["channels"] == 2
    assert word_overlap(asked.text, report["user_text"]) >= _MIN_OVERLAP, report["user_text"]
    assert same_text(report["reply_text"], answers[asked.intent]), report["reply_text"]
    reply = read_audio(reply_path)
    assert (reply.sample_rate, reply.channels) == (48000, 1)
    assert reply.duration_s >= read_audio(audio).duration_s


def test_agent_file_that_does_not_validate_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: Broken desk\n"
        "fallbak: Sorry, I can't help with that.\n"
        "intents:\n"
        "  - name: hours\n"
        "    answer: Nine to five.\n"
        "    examples: [when are you open]\n",
        encoding="utf-8",
    )
    proc = run_cli("call", str(question("payment").path()), "--agent", str(bad), "--fast")
    # The misspelt field, the hint for it, and the required field it left out.
    assert_refused(proc, str(bad), "fallbak", "did you mean 'fallback'", "fallback: Field required")


def test_config_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "voiceagent.toml"
    config.write_text("vad_treshold = 0.6\n", encoding="utf-8")
    proc = run_cli("--config", str(config), "call", str(question("payment").path()), "--fast")
    assert_refused(proc, "vad_treshold")


def test_words_spells_numbers_as_the_answers_do() -> None:
    # The checks above lean on this: Whisper writes digits where the agent's answers spell them out.
    spoken = "free over fifty dollars otherwise it's four ninety nine nine to five"
    assert words("Free over $50, otherwise it's $4.99; 9 to 5.") == spoken.split(" ")


def test_caller_interrupting_the_reply_silences_it_and_history_keeps_the_heard_part(
    tmp_path: Path, answers: dict[str, str]
) -> None:
    first, second = question("opening-hours"), question("payment")
    plain = call_json(first.path(), tmp_path / "plain.wav")
    turn = plain["turns"][0]
    # The second question starts 2 s into the first answer.
    reply_start_ms = turn["speech_end_ms"] + turn["first_audio_ms"]
    head = read_pcm(first.path())
    onset_in_second = samples_to_ms(speech_span(read_pcm(second.path()))[0])
    gap_ms = reply_start_ms + 2000 - samples_to_ms(head.size) - onset_in_second
    caller = np.concatenate([head, silence(gap_ms), read_pcm(second.path())])
    wav = tmp_path / "interrupting.wav"
    write_wav(wav, caller, SAMPLE_RATE)

    proc = run_cli("call", str(wav), "--out", str(tmp_path / "reply.wav"), "--json", "--fast", "--events")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)

    cut, answered = report["turns"]
    assert cut["interrupted"]
    assert is_strict_word_prefix(cut["reply_text"], answers[first.intent]), cut["reply_text"]
    assert same_text(answered["reply_text"], answers[second.intent])
    # silent from shortly after the interruption's onset until the second answer starts
    reply = read_pcm(tmp_path / "reply.wav")
    onset = answered["speech_start_ms"]
    second_answer = next(
        e["media_ms"]
        for e in report["events"]
        if e["kind"] == "agent_audio_started" and e["data"]["turn"] == 1
    )
    assert peak(reply[ms_to_samples(onset - 1000) : ms_to_samples(onset)]) > 1000  # it was talking
    assert peak(reply[ms_to_samples(onset + 150) : ms_to_samples(second_answer)]) < SILENT_PEAK
    # the engine's history holds what was heard of the first answer, not what was generated
    assistant = [m["content"] for m in report["history"] if m["role"] == "assistant"]
    assert assistant[0] == cut["reply_text"]
    assert len(assistant[0].split()) < len(answers[first.intent].split())


def test_call_is_written_to_the_call_log(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "calls.db"
    env_url = f"sqlite+aiosqlite:///{db}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "voiceagent",
            "call",
            str(question("payment").path()),
            "--json",
            "--fast",
            "--events",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
        env={
            **__import__("os").environ,
            "VOICEAGENT_DATABASE_URL": env_url,
            "VOICEAGENT_SPOOL_DIR": str(tmp_path),
        },
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    with sqlite3.connect(db) as conn:
        calls = conn.execute("select id, channel, end_reason from calls").fetchall()
        turns = conn.execute(
            "select speaker, text from turns where call_id = ? order by 1", (report["call_id"],)
        )
        speakers = dict(turns.fetchall())
        events = conn.execute(
            "select count(*) from call_events where call_id = ?", (report["call_id"],)
        ).fetchone()
        outbox = [r[0] for r in conn.execute("select event_type from webhook_outbox order by id")]
    assert calls == [(report["call_id"], "file", "completed")]
    assert speakers["caller"] == report["turns"][0]["user_text"]
    assert speakers["agent"] == report["turns"][0]["reply_text"]
    # every timeline event is in the log; call_ended is the last one and is logged too
    assert events[0] == len(report["events"])
    assert outbox[0] == "call.started"
    assert outbox[-1] == "call.ended"
    assert "turn.completed" in outbox
