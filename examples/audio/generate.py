"""Regenerate the shipped caller utterances from questions.json with the packaged TTS voice.

    python examples/audio/generate.py

Writes NAME.wav (16 kHz) and NAME-8k.wav (8 kHz, through G.711 mu-law) beside this script.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from voiceagent.audio import float_to_pcm16, resample, ulaw_decode, ulaw_encode, write_wav
from voiceagent.engines.cascade.tts import HibariTts

HERE = Path(__file__).resolve().parent
LEAD_S, TAIL_S = 0.5, 1.0


def main() -> None:
    spec = json.loads((HERE / "questions.json").read_text(encoding="utf-8"))
    tts = HibariTts("hibari-heart")
    for q in spec["questions"]:
        speech = resample(tts.synthesize(q["text"]), tts.sample_rate, 16000)
        lead, tail = np.zeros(int(LEAD_S * 16000), np.float32), np.zeros(int(TAIL_S * 16000), np.float32)
        pcm = float_to_pcm16(np.concatenate([lead, speech * 0.9, tail]))
        write_wav(HERE / f"{q['name']}.wav", pcm, 16000)
        phone = ulaw_decode(ulaw_encode(resample(pcm, 16000, 8000)))
        write_wav(HERE / f"{q['name']}-8k.wav", phone, 8000)
        print(f"{q['name']}: {pcm.size / 16000:.2f} s  {q['text']}")


if __name__ == "__main__":
    main()
