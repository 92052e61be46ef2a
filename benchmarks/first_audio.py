"""First agent audio after the caller stops (p50/p95) over examples/audio, on the CPU cascade engine.

    python benchmarks/first_audio.py [--repeat N] [--realtime] [--json]

Same as ``voiceagent bench first-audio``.
"""

from voiceagent.cli import cli

if __name__ == "__main__":
    cli(["bench", "first-audio", *__import__("sys").argv[1:]], prog_name="benchmarks/first_audio.py")
