"""A real user agent (baresip) calls the agent over SIP, asks a question, and hears the answer.

baresip plays the shipped 8 kHz question (padded with silence so the call lasts until the answer
is over) through its ``aufile`` source and dumps what it hears with ``sndfile``; an independent
Whisper checks that the recorded reply is the agent's answer to that question.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voiceagent.audio import resample
from voiceagent.bridges.sip.leg import SipCallLeg
from voiceagent.config import Settings
from voiceagent.engines.cascade import CascadeEngine
from voiceagent.engines.cascade.asr import WhisperAsr

from .corpus import AUDIO_DIR, transcribe, word_overlap
from .sip_support import free_rtp_range, free_udp_port, sip_service, wait_for

BARESIP = shutil.which("baresip")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BARESIP is None, reason="baresip is not installed"),
    pytest.mark.asyncio(loop_scope="session"),
]

_MODULES = "/usr/lib/baresip/modules"
_TAIL_S = 9.0  # silence after the question: the answer must fit in it


def _baresip_config(root: Path, question: Path) -> Path:
    cfg, rec = root / "baresip", root / "heard"
    cfg.mkdir()
    rec.mkdir()
    first, last = free_rtp_range(20)
    (cfg / "config").write_text(
        "\n".join(
            [
                "poll_method epoll",
                f"sip_listen 127.0.0.1:{free_udp_port()}",
                "sip_transports udp",
                "audio_player aubridge,nowhere",  # what we hear goes to sndfile's dump, not a device
                f"audio_source aufile,{question}",
                "audio_alert aubridge,nowhere",
                "ausrc_srate 8000",
                "auplay_srate 8000",
                f"rtp_ports {first}-{last}",
                f"module_path {_MODULES}",
                "module g711.so",
                "module aufile.so",
                "module aubridge.so",
                "module sndfile.so",
                "module_app account.so",
                "module_app menu.so",
                f"snd_path {rec}",
                "",
            ]
        )
    )
    (cfg / "accounts").write_text("<sip:caller@127.0.0.1>;regint=0;audio_codecs=PCMU\n")
    (cfg / "contacts").write_text("")
    return cfg


# 40: the bridge hands the media layer two frames a tick (sip_frame_ms), and the answer still
# reaches the caller whole.
@pytest.mark.parametrize("frame_ms", [20, 40])
async def test_baresip_caller_hears_the_answer_to_its_question(
    frame_ms: int,
    settings: Settings,
    engine: CascadeEngine,
    transcriber: WhisperAsr,
    answers: dict[str, str],
    tmp_path: Path,
) -> None:
    samples, rate = sf.read(AUDIO_DIR / "opening-hours-8k.wav", dtype="int16")
    assert rate == 8000
    padded = np.concatenate([np.zeros(rate // 2, np.int16), samples, np.zeros(int(rate * _TAIL_S), np.int16)])
    question = tmp_path / "question.wav"
    sf.write(question, padded, rate, subtype="PCM_16")
    cfg = _baresip_config(tmp_path, question)
    legs: list[SipCallLeg] = []
    async with sip_service(settings, engine=engine, legs=legs, frame_ms=frame_ms) as service:
        target = f"sip:agent@127.0.0.1:{service.options.sip_port}"
        proc = await asyncio.create_subprocess_exec(
            str(BARESIP), "-f", str(cfg), "-n", "127.0.0.1", "-e", f"/dial {target}", "-t", "30",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 45)
        log = out.decode(errors="replace")
        assert await wait_for(lambda: bool(legs) and legs[0].end_reason is not None, 10), log[-3000:]
    assert "Call established" in log, log[-2000:]
    leg = legs[0]
    assert leg.end_reason == "remote_hangup"  # baresip hung up when its file ended
    # The loop was woken once per bridge tick: every 40 ms, not 20, when asked to.
    assert abs(statistics.median(leg.tick_gaps_ms) - frame_ms) < 5, statistics.median(leg.tick_gaps_ms)
    dumps = sorted((tmp_path / "heard").glob("*-dec.wav"))
    assert dumps, log[-2000:]
    heard, heard_rate = sf.read(dumps[0], dtype="int16")
    heard16 = resample(heard, heard_rate, 16000)
    text = transcribe(transcriber, heard16)
    assert word_overlap(answers["opening_hours"], text) >= 0.6, (text, answers["opening_hours"])
