"""The extractive summariser, summary trimming and merging, and the fold-to-budget rule."""

from collections.abc import Sequence

import pytest

from voiceagent.agents import IntentMatcher, Message, builtin_agent_path, load_agent
from voiceagent.errors import LLMError
from voiceagent.memory import (
    CallerMemory,
    CallSummary,
    Context,
    ExtractiveSummarizer,
    NumberFact,
    budget_chars_for_tokens,
    extract_name,
    fold_to_budget,
)


def user(text: str) -> Message:
    return Message("user", text)


def agent(text: str) -> Message:
    return Message("assistant", text)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Hi, my name is Maria Lopez and I'm calling about my order", "Maria Lopez"),
        ("Hi, this is Dev Patel.", "Dev Patel"),
        ("my name is maria", "Maria"),
        ("My name is John and I need help", "John"),
        ("please call me back at noon", None),
        ("It's Sam here", "Sam"),
        ("this is about my order", None),
        ("I'm calling about a refund", None),
        ("Hello, I'm Still waiting", None),
    ],
)
def test_names_are_taken_only_from_introductions(text: str, name: str | None) -> None:
    assert extract_name(text) == name


def test_questions_stay_open_until_the_agent_answers_them() -> None:
    summarizer = ExtractiveSummarizer()
    summary = summarizer.fold_now(
        CallSummary(), [user("When does the store open on Sunday? Do you sell gift cards?")]
    )
    assert summary.open_questions == ("When does the store open on Sunday?", "Do you sell gift cards?")
    summary = summarizer.fold_now(summary, [agent("Sorry, I'm not sure about gift cards.")])
    assert len(summary.open_questions) == 2  # an unsure reply answers nothing
    summary = summarizer.fold_now(summary, [agent("The store opens at ten on Sunday.")])
    assert summary.open_questions == ("Do you sell gift cards?",)


def test_promises_and_intents_are_kept() -> None:
    matcher = IntentMatcher(load_agent(builtin_agent_path()))
    summary = ExtractiveSummarizer(matcher).fold_now(
        CallSummary(),
        [
            user("Where is my order? It hasn't arrived."),
            agent("It ships tomorrow. We'll send you the tracking number by text."),
        ],
    )
    assert "order_status" in summary.intents
    assert summary.promises == ("We'll send you the tracking number by text.",)
    assert summary.turns_folded == 2


def test_facts_survive_repeated_folds_and_a_repeat_moves_to_the_end() -> None:
    summarizer = ExtractiveSummarizer()
    summary = summarizer.fold_now(CallSummary(), [user("My name is Ana, order 4417.")])
    for i in range(30):
        summary = summarizer.fold_now(summary, [user(f"Also this other thing number {i}."), agent("Okay.")])
    assert summary.caller_name == "Ana"
    assert summary.order_numbers == ["4417"]
    summary = summarizer.fold_now(summary, [user("My phone is 555-201-7788. Again, order 4417.")])
    assert summary.numbers[-1] == NumberFact(kind="order", value="4417")


async def test_a_failing_llm_hook_leaves_the_extractive_summary() -> None:
    class Broken:
        async def refine(self, summary: CallSummary, messages: Sequence[Message]) -> CallSummary:
            raise LLMError("endpoint down")

    class Shouting:
        async def refine(self, summary: CallSummary, messages: Sequence[Message]) -> CallSummary:
            return summary.model_copy(update={"caller_name": (summary.caller_name or "").upper()})

    turns = [user("My name is Ana.")]
    assert (await ExtractiveSummarizer(llm=Broken()).fold(CallSummary(), turns)).caller_name == "Ana"
    assert (await ExtractiveSummarizer(llm=Shouting()).fold(CallSummary(), turns)).caller_name == "ANA"


def test_trimming_gives_up_topics_before_the_name_and_order_numbers() -> None:
    summary = CallSummary(
        caller_name="Maria Lopez",
        numbers=(NumberFact(kind="order", value="4417"), NumberFact(kind="amount", value="25")),
        intents=tuple(f"topic_{i}" for i in range(8)),
        open_questions=tuple(f"Question number {i} about something?" for i in range(5)),
        promises=tuple(f"I'll do thing {i}." for i in range(5)),
    )
    small = summary.trimmed(160)
    assert len(small.render()) <= 160
    assert small.caller_name == "Maria Lopez"
    assert small.order_numbers == ["4417"]
    assert small.intents == ("topic_7",)  # the newest of each kind goes last
    assert len(summary.trimmed(10).render()) <= 10


def test_merging_lays_the_newer_call_over_the_older() -> None:
    older = CallSummary(caller_name="Ana", numbers=(NumberFact(kind="order", value="4417"),), turns_folded=4)
    newer = CallSummary(
        intents=("shipping",), numbers=(NumberFact(kind="order", value="5000"),), turns_folded=2
    )
    merged = older.merged(newer)
    assert merged.caller_name == "Ana"
    assert merged.order_numbers == ["4417", "5000"]
    assert merged.turns_folded == 6
    memory = CallerMemory(caller_id="+1", summary=merged, updated_at=0.0)
    assert memory.recap() == "Last time you asked about order 5000."
    assert CallerMemory(caller_id="+1", summary=CallSummary(), updated_at=0.0).recap() == ""


async def test_fold_to_budget_bounds_any_input() -> None:
    summarizer = ExtractiveSummarizer()
    pending = [user("My order is 4417. " + "x" * 2000), agent("ok"), user("and " * 100)]
    result = await fold_to_budget(CallSummary(), pending, 400, summarizer)
    context = Context(result.summary, result.recent)
    assert context.size_chars <= 400
    assert result.newly_folded + len(result.recent) == 3
    assert result.summary.order_numbers == ["4417"]
    with pytest.raises(ValueError, match="below"):
        await fold_to_budget(CallSummary(), pending, 100, summarizer)


async def test_nothing_is_folded_while_it_fits() -> None:
    pending = [user("hi"), agent("hello")]
    result = await fold_to_budget(CallSummary(), pending, 1000, ExtractiveSummarizer())
    assert result.newly_folded == 0
    assert result.recent == pending


def test_context_as_brain_history_puts_the_summary_first() -> None:
    context = Context(CallSummary(caller_name="Ana"), [user("hi")])
    history = context.as_messages()
    assert history[0].role == "system"
    assert "Caller name: Ana" in history[0].content
    assert history[1:] == [user("hi")]
    assert Context(CallSummary(), [user("hi")]).as_messages() == [user("hi")]


def test_token_budgets_convert_at_four_chars_a_token() -> None:
    assert budget_chars_for_tokens(1500) == 6000
