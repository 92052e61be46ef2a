import dataclasses
import logging
import random
import threading
from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")

from voiceagent.model import SpeechLM, preset  # noqa: E402
from voiceagent.serving import (  # noqa: E402
    AddCall,
    AppendAudio,
    CancelTurn,
    EngineConfig,
    EngineCore,
    EngineOutput,
    EngineThread,
    RemoveCall,
    StartTurn,
    TruncateTurn,
    TurnFinished,
    TurnOutput,
)

CONFIG = dataclasses.replace(preset("tiny"), enc_layers=1, dec_layers=2, enc_window_frames=16)
CHUNK = 1280  # samples of 80 ms at 16 kHz


@pytest.fixture(autouse=True)
def _no_engine_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    # The loop logs and survives a failed input or step; in these tests that is a failure.
    yield
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.fixture(scope="module")
def model() -> SpeechLM:
    torch.manual_seed(0)
    return SpeechLM(CONFIG).eval()


def _core(model: SpeechLM, slots: int) -> EngineCore:
    return EngineCore(model, EngineConfig(max_slots=slots, max_tokens=96, max_frames=48))


def _audio(seed: int, chunks: int) -> "torch.Tensor":
    return torch.randn(chunks * CHUNK + seed % 700, generator=torch.Generator().manual_seed(seed)) * 0.1


@dataclasses.dataclass
class _Call:
    """A scripted call: audio pieces, then a turn, then maybe more audio and a second turn."""

    id: str
    turns: list[tuple[list["torch.Tensor"], int]]  # (audio pieces, max_steps) per turn
    start: int = 0
    outputs: list[tuple[int, int, "torch.Tensor"]] = dataclasses.field(default_factory=list)
    finished: list[TurnFinished] = dataclasses.field(default_factory=list)
    _turn: int = 0
    _piece: int = 0
    _waiting: bool = False
    done: bool = False


def _script(seed: int) -> _Call:
    rng = random.Random(seed)
    turns = []
    for t in range(rng.choice([1, 2])):
        pieces = [_audio(seed * 10 + t * 3 + p, rng.randint(1, 4)) for p in range(rng.randint(1, 3))]
        turns.append((pieces, rng.randint(2, 6)))
    return _Call(f"call{seed}", turns)


def _drive(core: EngineCore, calls: list[_Call], max_steps: int = 3000) -> None:
    """Play the scripts on the core; each step, each started call does at most one thing. A call
    starts at its `start` step or later, once a slot is free for it (admission waits, never fails)."""
    by_id = {c.id: c for c in calls}
    started: set[str] = set()
    for step in range(max_steps):
        for c in calls:
            if c.done or c._waiting:
                continue
            if c.id not in started:
                if step >= c.start and len(started) - sum(x.done for x in calls) < core.pool.max_slots:
                    core.submit(AddCall(c.id))
                    started.add(c.id)
                continue
            if c._turn == len(c.turns):
                core.submit(RemoveCall(c.id))
                c.done = True
                continue
            pieces, max_turn_steps = c.turns[c._turn]
            if c._piece < len(pieces):
                core.submit(AppendAudio(c.id, pieces[c._piece]))
                c._piece += 1
            else:
                core.submit(StartTurn(c.id, f"{c.id}/{c._turn}", max_steps=max_turn_steps))
                c._waiting = True
        for out in core.step():
            c = by_id[out.call_id]
            if isinstance(out, TurnOutput):
                c.outputs.append((c._turn, out.token, out.mel))
            else:
                c.finished.append(out)
                c._waiting, c._piece = False, 0
                c._turn += 1
        if all(c.done for c in calls):
            core.step()  # apply the last removals
            assert core.pool.active == 0
            return
    raise AssertionError("scripts did not finish")


def _alone(model: SpeechLM, seed: int) -> _Call:
    call = _script(seed)
    _drive(_core(model, 1), [call])
    return call


def _assert_same(batched: _Call, alone: _Call) -> None:
    assert (
        [f.reason for f in batched.finished]
        == [f.reason for f in alone.finished]
        == ["length"] * len(alone.turns)
    )
    assert [(t, tok) for t, tok, _ in batched.outputs] == [(t, tok) for t, tok, _ in alone.outputs]
    for (_, _, a), (_, _, b) in zip(batched.outputs, alone.outputs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_a_batch_of_calls_gives_each_calls_outputs_alone(model: SpeechLM) -> None:
    calls = [_script(seed) for seed in range(4)]
    _drive(_core(model, 4), calls)
    for seed, call in enumerate(calls):
        _assert_same(call, _alone(model, seed))


def test_slots_stay_isolated_under_admission_and_eviction_churn(model: SpeechLM) -> None:
    rng = random.Random(7)
    calls = [_script(seed) for seed in range(10, 22)]
    for c in calls:
        c.start = rng.randint(0, 40)
    core = _core(model, 3)  # fewer slots than calls: rows are reused while other calls run
    slots_used: set[int] = set()
    admit = core.pool.admit

    def spy(call_id: str) -> int:
        slot = admit(call_id)
        slots_used.add(slot)
        return slot

    core.pool.admit = spy  # type: ignore[method-assign]
    _drive(core, calls)
    assert slots_used == {0, 1, 2}
    for call in calls:
        _assert_same(call, _alone(model, int(call.id.removeprefix("call"))))


def _speaking(model: SpeechLM, max_steps: int = 40) -> tuple[EngineCore, list[EngineOutput]]:
    core = _core(model, 2)
    core.submit(AddCall("a"))
    core.submit(AppendAudio("a", _audio(1, 3)))
    core.submit(StartTurn("a", "t1", max_steps=max_steps))
    outputs: list[EngineOutput] = []
    for _ in range(8):
        outputs += core.step()
    return core, outputs


def test_cancel_applies_between_steps_and_ends_the_turn(model: SpeechLM) -> None:
    core, before = _speaking(model)
    assert before
    assert all(isinstance(o, TurnOutput) for o in before)
    core.submit(CancelTurn("a", "t1"))
    after = core.step()
    assert len(after) == 1
    assert isinstance(after[0], TurnFinished)
    assert after[0].reason == "cancelled"
    assert list(after[0].tokens) == [o.token for o in before if isinstance(o, TurnOutput)]
    assert core.step() == []  # nothing more for the call: it listens again
    assert core.calls["a"].phase == "listening"


def test_cancel_of_another_turn_is_ignored(model: SpeechLM) -> None:
    core, _ = _speaking(model)
    core.submit(CancelTurn("a", "some-old-turn"))
    assert all(isinstance(o, TurnOutput) for o in core.step())


def test_truncation_keeps_only_the_heard_tokens_in_the_context(model: SpeechLM) -> None:
    core, before = _speaking(model)
    state = core.calls["a"]
    start = state.turn_start
    core.submit(TruncateTurn("a", "t1", keep_tokens=3))
    (done,) = core.step()
    assert isinstance(done, TurnFinished)
    assert done.reason == "truncated"
    assert list(done.tokens) == [o.token for o in before if isinstance(o, TurnOutput)][:3]
    assert state.self_len == start + 3
    assert int(core.pool.cache.self_lengths[state.slot]) == start + 3


def test_truncation_after_the_turn_ended_trims_the_context_too(model: SpeechLM) -> None:
    core, outputs = _speaking(model, max_steps=5)
    assert isinstance(outputs[-1], TurnFinished)
    state = core.calls["a"]
    core.submit(TruncateTurn("a", "t1", keep_tokens=1))
    assert core.step() == []
    assert state.self_len == state.turn_start + 1
    assert int(core.pool.cache.self_lengths[state.slot]) == state.turn_start + 1


def test_a_full_pool_refuses_the_call(model: SpeechLM) -> None:
    core = _core(model, 1)
    got: list[EngineOutput] = []
    core.on_output = got.extend
    core.submit(AddCall("a"))
    core.submit(AddCall("b"))
    core.step()
    assert [(o.call_id, getattr(o, "reason", None)) for o in got] == [("b", "error")]


def test_engine_thread_serves_and_stops(model: SpeechLM) -> None:
    got: list[EngineOutput] = []
    done = threading.Event()

    def collect(outputs: list[EngineOutput]) -> None:
        got.extend(outputs)
        if any(isinstance(o, TurnFinished) for o in outputs):
            done.set()

    core = EngineCore(model, EngineConfig(max_slots=2, max_tokens=96, max_frames=48), on_output=collect)
    thread = EngineThread(core, name="test-engine")
    core.submit(AddCall("a"))
    core.submit(AppendAudio("a", _audio(3, 2)))
    core.submit(StartTurn("a", "t", max_steps=3))
    assert done.wait(10)
    thread.close()
    assert not thread.alive
    assert "test-engine" not in [t.name for t in threading.enumerate()]
    assert [type(o).__name__ for o in got] == ["TurnOutput"] * 3 + ["TurnFinished"]


def test_the_sync_free_moe_of_the_cuda_path_decodes_the_same(model: SpeechLM) -> None:
    from voiceagent.serving.runner import use_sync_free_moe

    dense = SpeechLM(CONFIG).eval()
    dense.load_state_dict(model.state_dict())
    use_sync_free_moe(dense)
    calls = [_script(seed) for seed in (40, 41)]
    _drive(_core(model, 2), calls)
    dense_calls = [_script(seed) for seed in (40, 41)]
    _drive(_core(dense, 2), dense_calls)
    for a, b in zip(calls, dense_calls, strict=True):
        _assert_same(b, a)


def test_a_turn_that_does_not_fit_restarts_the_decoder_context(model: SpeechLM) -> None:
    core = _core(model, 1)  # max_tokens 96
    core.submit(AddCall("a"))
    outputs: list[EngineOutput] = []
    for turn in range(4):
        core.submit(StartTurn("a", f"t{turn}", prompt=tuple(range(30)), max_steps=20))
        for _ in range(25):
            outputs += core.step()
    finished = [o for o in outputs if isinstance(o, TurnFinished)]
    assert [f.reason for f in finished] == ["length"] * 4
    assert core.calls["a"].self_len <= 96
