"""The SessionMemory contract, run on both stores: in-process and a real Redis (127.0.0.1:6379).

Redis keys live under a prefix unique to each test and are deleted after it; nothing else on the
server is touched. Start Redis with scripts/services.sh.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from voiceagent.agents import IntentMatcher, Message, builtin_agent_path, load_agent
from voiceagent.memory import (
    CallSummary,
    ExtractiveSummarizer,
    InProcessMemory,
    RedisMemory,
    SessionMemory,
)

REDIS_URL = "redis://127.0.0.1:6379/0"

MemoryFactory = Callable[..., SessionMemory]


async def delete_prefix(prefix: str) -> None:
    """Delete the keys a test made: only those under its own prefix, never FLUSHALL."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["inprocess", "redis"])
async def make_memory(request: pytest.FixtureRequest) -> AsyncIterator[MemoryFactory]:
    """Builds memories of one backend; every Redis memory of a test shares one unique prefix."""
    prefix = f"voiceagent-test:{uuid.uuid4().hex}:"
    made: list[SessionMemory] = []

    def factory(**kwargs: Any) -> SessionMemory:
        memory: SessionMemory
        if request.param == "redis":
            memory = RedisMemory(REDIS_URL, prefix=prefix, **kwargs)
        else:
            memory = InProcessMemory(**kwargs)
        made.append(memory)
        return memory

    yield factory
    for memory in made:
        await memory.aclose()
    if request.param == "redis":
        await delete_prefix(prefix)


@pytest.fixture
def summarizer() -> ExtractiveSummarizer:
    return ExtractiveSummarizer(IntentMatcher(load_agent(builtin_agent_path())))


# ---- the running conversation ---------------------------------------------------------------


async def test_messages_come_back_in_order_per_call(make_memory: MemoryFactory) -> None:
    memory = make_memory()
    assert await memory.messages("none") == []
    for i in range(5):
        await memory.append("call-a", Message("user", f"line {i}"))
        await memory.append("call-b", Message("assistant", f"other {i}"))
    assert [m.content for m in await memory.messages("call-a")] == [f"line {i}" for i in range(5)]
    assert {m.role for m in await memory.messages("call-b")} == {"assistant"}


async def test_context_is_verbatim_while_under_budget(make_memory: MemoryFactory) -> None:
    memory = make_memory(budget_chars=1000)
    turns = [Message("user", "Hi there."), Message("assistant", "Hello, how can I help?")]
    for turn in turns:
        await memory.append("c1", turn)
    context = await memory.context("c1")
    assert context.recent == turns
    assert context.summary == CallSummary()
    assert (await memory.context("unknown")).recent == []


async def test_context_folds_old_turns_and_keeps_every_message(make_memory: MemoryFactory) -> None:
    memory = make_memory(budget_chars=600)
    sent = [Message("user" if i % 2 == 0 else "assistant", f"turn {i}: " + "words " * 12) for i in range(40)]
    for turn in sent:
        await memory.append("c1", turn)
        context = await memory.context("c1")
        assert context.size_chars <= 600
    assert context.summary.turns_folded > 0
    assert context.summary.turns_folded + len(context.recent) == len(sent)
    assert context.recent == sent[-len(context.recent) :]
    assert await memory.messages("c1") == sent


async def test_a_turn_longer_than_the_budget_is_folded_too(make_memory: MemoryFactory) -> None:
    memory = make_memory(budget_chars=500)
    await memory.append("c1", Message("user", "My order number is 4417. " + "blah " * 300))
    context = await memory.context("c1")
    assert context.size_chars <= 500
    assert context.summary.order_numbers == ["4417"]


async def test_whole_call_summary_has_questions_and_promises(make_memory: MemoryFactory) -> None:
    memory = make_memory()
    for role, text in [
        ("user", "Hi, this is Dev Patel. My phone number is 555-201-7788."),
        ("assistant", "Thanks Dev. How can I help?"),
        ("user", "Can I return shoes I bought online? And do you price match?"),
        ("assistant", "Yes, you can return shoes within 30 days. I'll email you a return label today."),
    ]:
        await memory.append("c1", Message(role, text))  # type: ignore[arg-type]
    summary = await memory.summary("c1")
    assert summary.caller_name == "Dev Patel"
    assert summary.numbers_of("phone") == ["5552017788"]
    assert summary.open_questions == ("And do you price match?",)
    assert summary.promises == ("I'll email you a return label today.",)


# ---- the acceptance test: an hour-long call in miniature -------------------------------------

CONVERSATION = [
    ("user", "Hi, my name is Maria Lopez. I'm calling about order number four four one seven."),
    ("assistant", "Thanks Maria. Let me look up order 4417 for you."),
    ("user", "It was supposed to arrive on Monday and it still hasn't shown up."),
    ("assistant", "I see it left our warehouse on Friday. I'll ask the carrier for an update."),
    ("user", "Okay. While I have you, what time does your store open on Saturday?"),
    ("assistant", "Our store opens at nine in the morning on Saturday and closes at six."),
    ("user", "Great. Do you ship to Canada as well?"),
    ("assistant", "Yes, we ship to Canada. International shipping takes seven to ten days."),
    ("user", "How much does the shipping to Canada cost?"),
    ("assistant", "Shipping to Canada costs fifteen dollars, or free over one hundred dollars."),
    ("user", "Can I pay with PayPal?"),
    ("assistant", "Yes, we accept PayPal, all major credit cards and gift cards."),
    ("user", "My sister bought a jacket that is too small. How do returns work?"),
    ("assistant", "Returns are free within thirty days. We will send a prepaid return label by email."),
    ("user", "Does she need the receipt for the return?"),
    ("assistant", "The order confirmation email is enough for a return, no paper receipt needed."),
    ("user", "Where is your store on Main Street exactly?"),
    ("assistant", "Our store is at 200 Main Street, next to the library, with parking behind it."),
    ("user", "Is there parking for bikes too?"),
    ("assistant", "Yes, there is a bike rack by the front door of the store."),
    ("user", "I have a gift card, the number is nine nine eight one two three. Can I use it online?"),
    ("assistant", "Yes, gift cards work online and in store. Enter the number at checkout."),
    ("user", "How do I check the balance on it?"),
    ("assistant", "The balance is printed on your receipt, or you can check it on our website."),
    ("user", "Do you have a loyalty program or a members discount?"),
    ("assistant", "Our rewards club is free and gives you ten percent off every fifth purchase."),
    ("user", "Can my husband call about his own account, his number is 555 010 2299?"),
    ("assistant", "Of course, he can call us any time and we will help him with his account."),
    ("user", "Are you open on public holidays like Thanksgiving?"),
    ("assistant", "We are closed on Thanksgiving Day and open from ten to four on the Friday after."),
    ("user", "Is there a sale coming up soon?"),
    ("assistant", "Our winter sale starts on the first of December, with up to forty percent off."),
    ("user", "Do you repair zippers on jackets bought from you?"),
    ("assistant", "Yes, we repair zippers for free within a year of purchase. Bring it to the store."),
    ("user", "What about resoling hiking boots?"),
    ("assistant", "We send boots to a partner cobbler; resoling costs about sixty dollars."),
]
_CHATTER = [
    ("user", "By the way, do you sell hiking boots in wide sizes?"),
    ("assistant", "We carry several hiking boots in wide sizes, in store and online."),
    ("user", "And what about waterproof jackets for kids?"),
    ("assistant", "Yes, kids waterproof jackets are in the outerwear section, sizes four to fourteen."),
]


def sixty_turns() -> list[Message]:
    lines = list(CONVERSATION)
    while len(lines) < 60:
        lines.extend(_CHATTER)
    return [Message(role, text) for role, text in lines[:60]]  # type: ignore[arg-type]


async def test_sixty_turn_call_stays_in_budget_and_keeps_turn_one_facts(
    make_memory: MemoryFactory, summarizer: ExtractiveSummarizer
) -> None:
    budget = 1000
    memory = make_memory(budget_chars=budget, summarizer=summarizer)
    turns = sixty_turns()
    sizes = []
    for turn in turns:
        await memory.append("call-60", turn)
        context = await memory.context("call-60")
        sizes.append(context.size_chars)
        assert context.size_chars <= budget
    assert sum(len(t.content) for t in turns) > 3 * budget  # it really had to fold
    summary = context.summary
    assert summary.turns_folded >= 40
    assert all(turn not in context.recent for turn in turns[:2])
    # The facts of turn one, asked of the summary alone.
    assert summary.caller_name == "Maria Lopez"
    assert "4417" in summary.order_numbers
    assert "Caller name: Maria Lopez" in summary.render()
    assert summary.intents  # recognised topics, the oldest given up first to stay in budget


# ---- per-caller memory ----------------------------------------------------------------------


async def test_remember_and_recall_a_caller_across_calls(make_memory: MemoryFactory) -> None:
    memory = make_memory()
    assert await memory.recall_caller("+15550001") is None
    await memory.append("call-1", Message("user", "My name is Ana. Where is order 4417?"))
    first = await memory.remember_caller("+15550001", await memory.summary("call-1"), call_id="call-1")
    assert first.calls == 1
    second_call = CallSummary(intents=("shipping",))
    merged = await memory.remember_caller("+15550001", second_call, call_id="call-2")
    recalled = await memory.recall_caller("+15550001")
    assert recalled == merged
    assert recalled is not None
    assert recalled.calls == 2
    assert recalled.last_call_id == "call-2"
    assert recalled.summary.caller_name == "Ana"
    assert recalled.summary.order_numbers == ["4417"]
    assert recalled.recap() == "Last time you asked about order 4417."


async def test_caller_memory_expires_after_its_ttl(make_memory: MemoryFactory) -> None:
    memory = make_memory(caller_ttl_s=1.0)
    await memory.remember_caller("+15550002", CallSummary(caller_name="Bo"))
    assert await memory.recall_caller("+15550002") is not None
    await asyncio.sleep(1.3)  # the one test that has to wait for a clock
    assert await memory.recall_caller("+15550002") is None


async def test_forget_caller_deletes_their_memory_and_calls_only(make_memory: MemoryFactory) -> None:
    memory = make_memory(budget_chars=500)
    for call_id in ("call-1", "call-2"):
        await memory.bind_caller(call_id, "+15550003")
        for i in range(20):
            await memory.append(call_id, Message("user", f"My order is 4417, line {i} " + "x" * 30))
        await memory.context(call_id)  # so a folded summary exists too
    await memory.remember_caller("+15550003", await memory.summary("call-1"), call_id="call-1")
    await memory.append("other-call", Message("user", "someone else"))
    await memory.remember_caller("+15550004", CallSummary(caller_name="Other"))

    await memory.forget_caller("+15550003")

    assert await memory.recall_caller("+15550003") is None
    for call_id in ("call-1", "call-2"):
        assert await memory.messages(call_id) == []
        context = await memory.context(call_id)
        assert context.recent == []
        assert context.summary == CallSummary()
    assert await memory.messages("other-call") == [Message("user", "someone else")]
    assert await memory.recall_caller("+15550004") is not None


async def test_forget_call_deletes_one_call(make_memory: MemoryFactory) -> None:
    memory = make_memory()
    await memory.append("c1", Message("user", "one"))
    await memory.append("c2", Message("user", "two"))
    await memory.forget_call("c1")
    assert await memory.messages("c1") == []
    assert await memory.messages("c2") == [Message("user", "two")]


async def test_concurrent_appends_and_folds_lose_nothing(make_memory: MemoryFactory) -> None:
    memory = make_memory(budget_chars=500)

    async def talk(speaker: str) -> None:
        for i in range(50):
            await memory.append("busy", Message("user", f"{speaker} says number {i} " + "y" * 20))
            await memory.context("busy")

    await asyncio.gather(talk("a"), talk("b"))
    context = await memory.context("busy")
    assert len(await memory.messages("busy")) == 100
    assert context.summary.turns_folded + len(context.recent) == 100
