import pytest

pytest.importorskip("torch")

from voiceagent.serving.scheduler import CallState, Scheduler, StepPlan, batch_bucket, bucket


def _scheduler(**kw: int | bool) -> Scheduler:
    args = {"chunk_mel_frames": 8, "max_slots": 16, "max_tokens": 256, "max_frames": 128} | kw
    return Scheduler(**args)


def test_idle_calls_give_an_empty_plan() -> None:
    plan = _scheduler().schedule([CallState("a", 0), CallState("b", 1, mel_frames=7)])
    assert plan == StepPlan()
    assert plan.is_empty


def test_listening_calls_with_a_whole_chunk_advance_the_encoder_only() -> None:
    plan = _scheduler().schedule([CallState("b", 3, mel_frames=20), CallState("a", 1, mel_frames=8)])
    assert plan.encode == (1, 3)
    assert plan.prefill == plan.decode == ()
    assert plan.rows == 0


def test_prefill_waits_until_the_turns_audio_is_encoded() -> None:
    waiting = CallState("a", 0, phase="prefill", mel_frames=16, prompt=[1, 2])
    ready = CallState("b", 1, phase="prefill", mel_frames=9, prompt=[1, 2])
    plan = _scheduler().schedule([waiting, ready])
    assert plan.encode == (0, 1)  # b's last chunk is encoded in the same step, before its prefill
    assert plan.prefill == (1,)


def test_prefill_budget_admits_the_first_turn_even_if_it_alone_is_over() -> None:
    calls = [CallState(str(i), i, phase="prefill", prompt=[0] * 300) for i in range(3)]
    plan = _scheduler(max_prefill_tokens=512).schedule(calls)
    assert plan.prefill == (0,)
    plan = _scheduler(max_prefill_tokens=100).schedule(calls)
    assert plan.prefill == (0,)


def test_speaking_calls_decode_on_a_bucketed_prefix_of_rows() -> None:
    calls = [
        CallState("a", 0, phase="speaking", self_len=70, cross_len=10),
        CallState("b", 2, phase="speaking", self_len=5, cross_len=65, mel_frames=8),
        CallState("c", 5, self_len=3, cross_len=3),  # listening, outside the rows of the batch
        CallState("d", 1, phase="prefill", prompt=[1, 2, 3], self_len=10),
    ]
    plan = _scheduler().schedule(calls)
    assert plan.decode == (0, 2)
    assert plan.prefill == (1,)
    assert plan.encode == (2,)
    assert plan.rows == 4  # rows 0..2 needed → batch bucket 4
    assert plan.kv_len == 128  # a needs 71 positions → next multiple of 64
    assert plan.frames_len == 128  # b will hold 66 frames after this step's chunk


def test_buckets() -> None:
    assert [batch_bucket(n, 24) for n in (1, 2, 3, 5, 17, 24)] == [1, 2, 4, 8, 24, 24]
    assert bucket(0, granule=64, limit=512) == 64
    assert bucket(65, granule=64, limit=512) == 128
    assert bucket(600, granule=64, limit=512) == 512


def test_eager_runs_take_the_exact_rows() -> None:
    calls = [CallState("a", 2, phase="speaking")]
    assert _scheduler(bucket_rows=False).schedule(calls).rows == 3
    assert _scheduler().schedule(calls).rows == 4
