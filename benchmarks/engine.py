"""Batched speech-LM engine vs a naive per-call baseline: real-time calls per device, first speech
frame after end of turn, cache bytes per call.

    python benchmarks/engine.py [--preset tiny|small|1b-active] [--device cuda|cpu] [--json]

Needs only torch, numpy and safetensors (runs on a bare GPU machine). Same as
``python -m voiceagent.serving.bench`` and ``voiceagent bench engine``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voiceagent.serving.bench import main

if __name__ == "__main__":
    main()
