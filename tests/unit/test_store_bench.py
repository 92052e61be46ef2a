"""The call-log benchmark runs end to end on a small simulation and reports its figures."""

from voiceagent.bench.calllog import run_calllog_bench
from voiceagent.config import load_settings


async def test_calllog_bench_writes_every_record_and_reports_submit_times() -> None:
    result = await run_calllog_bench(load_settings(), calls=20, events_per_call=10, concurrent=5)
    assert result["records"] == 20 * (10 + 4)
    assert result["writer"]["written"] == result["records"]
    assert result["writer"]["dropped"] == 0
    assert 0 <= result["submit_us"]["p50"] <= result["submit_us"]["p99"] <= result["submit_us"]["max"]
    assert "rows/s" in result["table"]
    assert "submit() per record" in result["table"]
