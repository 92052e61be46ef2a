"""Benchmarks behind ``voiceagent bench``: they print figures, they never pass or fail."""
