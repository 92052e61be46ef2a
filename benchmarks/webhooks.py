"""Webhook delivery throughput on loopback (events/s, attempt latency); see voiceagent.bench.webhooks.

    python benchmarks/webhooks.py [--events 2000] [--concurrency 16] [--database URL] [--json]

Same as ``voiceagent bench webhooks``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voiceagent.bench.webhooks import main

if __name__ == "__main__":
    main()
