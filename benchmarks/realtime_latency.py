"""Latency the speech-session protocol adds: an engine in-process vs the same engine behind
`voiceagent worker` over WebSocket on loopback, per audio chunk and on first audio (p50/p99).

    python benchmarks/realtime_latency.py [--sessions N] [--turns N] [--reply-ms MS] [--json]

Same as ``voiceagent bench realtime``. Target: at most 5 ms added at p99.
"""

from voiceagent.cli import cli

if __name__ == "__main__":
    cli(["bench", "realtime", *__import__("sys").argv[1:]], prog_name="benchmarks/realtime_latency.py")
