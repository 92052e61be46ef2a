import pytest

pytest.importorskip("torch")

from voiceagent.serving.bench import BenchSettings, run_engine_bench


def test_the_engine_bench_runs_both_engines_and_reports_the_figures() -> None:
    settings = BenchSettings(
        warmup_steps=1, timed_steps=3, max_timed_steps=3, latency_repeats=2, time_cap_s=1.0, max_calls=2
    )
    result = run_engine_bench(settings)
    assert set(result["engines"]) == {"batched", "naive"}
    for figures in result["engines"].values():
        assert 0 <= figures["max_realtime_calls"] <= 2
        assert figures["steps"]
        assert figures["first_frame_ms"]["p50"] > 0
    cache = result["cache_bytes_per_call"]["1b-active"]
    assert cache["eallqa"] == 125 * 24 * 512 * 2
    assert cache["multi_head"] == 8 * cache["eallqa"]
    assert "batched" in result["table"]
    assert "naive" in result["table"]
