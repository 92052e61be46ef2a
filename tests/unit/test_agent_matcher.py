"""Intent matching on the shipped front-desk agent, with ASR-style paraphrases it has never seen."""

from __future__ import annotations

import pytest

from voiceagent.agents import (
    AgentDefinition,
    Intent,
    IntentMatch,
    IntentMatcher,
    builtin_agent_path,
    load_agent,
)
from voiceagent.agents.text import content_terms, phrase_terms, stem, words


@pytest.fixture(scope="module")
def agent() -> AgentDefinition:
    return load_agent(builtin_agent_path())


@pytest.fixture(scope="module")
def matcher(agent: AgentDefinition) -> IntentMatcher:
    return IntentMatcher(agent)


def outcome(match: IntentMatch) -> str:
    """Intent name for answers, the action for transfers/hang-ups, "fallback" for no match."""
    if match.action != "answer":
        return match.action
    return match.intent.name if match.intent is not None else "fallback"


# Written as Whisper would transcribe callers; none of these is an example in the agent file
# (checked below), so they measure how well matching generalises.
PARAPHRASES = [
    ("What time do you open?", "opening_hours"),
    ("When are you guys open on Saturday?", "opening_hours"),
    ("Hours of operation.", "opening_hours"),
    ("Hi, um, are you open on Sundays?", "opening_hours"),
    ("How late are you guys open till on Friday?", "opening_hours"),
    ("What time do you close tonight?", "opening_hours"),
    ("Yeah hi, I was just wondering, um, what time you guys close on a Saturday.", "opening_hours"),
    ("you guys open right now?", "opening_hours"),
    ("what are your weekend hours", "opening_hours"),
    ("till when can I call today", "opening_hours"),
    ("I want to return a jacket.", "returns_refunds"),
    ("Can I send back these boots?", "returns_refunds"),
    ("I still haven't gotten my refund.", "returns_refunds"),
    ("What's your policy on returns?", "returns_refunds"),
    (
        "Hi yeah so I bought a rain jacket from you guys last month and it's got a hole in the sleeve, "
        "can I return it?",
        "returns_refunds",
    ),
    ("the shoes I ordered are too big, how do I send them back", "returns_refunds"),
    ("I'd like a refund please", "returns_refunds"),
    ("do I have to pay for return postage", "returns_refunds"),
    ("My package hasn't arrived.", "order_status"),
    ("Where's my order number four four one seven?", "order_status"),
    ("Where's my order, number 4417?", "order_status"),
    ("I'm trying to track my parcel.", "order_status"),
    ("I ordered a tent two weeks ago and it still isn't here.", "order_status"),
    (
        "Hello, I placed an order on Tuesday for a sleeping bag and the tracking hasn't updated since "
        "Wednesday.",
        "order_status",
    ),
    ("I never got my stuff", "order_status"),
    ("has my order shipped", "order_status"),
    ("can you tell me where my delivery is", "order_status"),
    ("How much do you charge for delivery?", "shipping"),
    ("How many days does shipping take?", "shipping"),
    ("Do you ship to the UK?", "shipping"),
    ("Is delivery free?", "shipping"),
    ("what does express shipping cost", "shipping"),
    ("how soon will it get here if I order today", "shipping"),
    ("do you deliver overseas", "shipping"),
    ("Do you take PayPal?", "payment_methods"),
    ("Can I pay with a Visa card?", "payment_methods"),
    ("Which cards do you accept?", "payment_methods"),
    ("Hey there, do you accept Mastercard or is it only Visa?", "payment_methods"),
    ("My card keeps getting declined when I check out.", "payment_methods"),
    ("can I pay cash", "payment_methods"),
    ("do you accept debit cards", "payment_methods"),
    ("Where is your shop?", "store_location"),
    ("What's the address of your store?", "store_location"),
    ("Is there somewhere I can see the products in person?", "store_location"),
    ("Is there a shop where I can try the boots on?", "store_location"),
    ("where exactly is your store", "store_location"),
    ("do you guys have a real store or just online", "store_location"),
    ("I'd like to cancel an order I placed this morning.", "cancel_order"),
    ("Please cancel my order.", "cancel_order"),
    ("So I clicked buy by accident and I really don't want it, can you stop it?", "cancel_order"),
    ("I want to cancel", "cancel_order"),
    ("cancel it please I ordered the wrong thing", "cancel_order"),
    ("I gave you the wrong delivery address.", "change_address"),
    ("Can you send my package to a different address?", "change_address"),
    ("I need to update the shipping address.", "change_address"),
    ("I just moved house last week so I need the parcel to go to my new place instead.", "change_address"),
    ("I need it shipped to another address", "change_address"),
    ("can I change the address for my order", "change_address"),
    ("Can I talk to a real person?", "transfer"),
    ("Could I get put through to someone in customer service please?", "transfer"),
    ("let me speak with a live agent", "transfer"),
    ("Okay, that's all, thanks so much.", "hangup"),
    ("Thank you, bye.", "hangup"),
    ("okay thanks, goodbye", "hangup"),
]

OFF_TOPIC = [
    "What's the weather on Mars?",
    "Blue banana keyboard.",
    "I'd like to order a pizza with extra cheese.",
    "Can you recommend a good pizza place?",
    "My car broke down on the highway.",
    "Tell me a joke.",
    "Who won the football game last night?",
    "Do you sell dog food?",
    "how do I reset my password",
    "what's the capital of france",
]


def test_paraphrases_are_unseen(agent: AgentDefinition) -> None:
    # Keywords are left out on purpose: they are fragments meant to turn up inside utterances.
    examples = {tuple(words(e)) for intent in agent.intents for e in intent.examples}
    for text, _ in PARAPHRASES:
        assert tuple(words(text)) not in examples, text


@pytest.mark.parametrize(("text", "expected"), PARAPHRASES)
def test_paraphrase_maps_to_intent(matcher: IntentMatcher, text: str, expected: str) -> None:
    match = matcher.match(text)
    assert outcome(match) == expected, f"{text!r}: {outcome(match)} ({match.score:.2f})"


def test_every_shipped_example_matches_its_own_intent(agent: AgentDefinition, matcher: IntentMatcher) -> None:
    for intent in agent.intents:
        for example in intent.examples:
            match = matcher.match(example)
            if intent.action == "answer":
                assert match.intent == intent, example
            else:
                # Transfer/goodbye examples may be caught by the phrase check first; same action.
                assert match.action == intent.action, example


@pytest.mark.parametrize("text", [*OFF_TOPIC, "", "   ", "?!.", "um uh"])
def test_off_topic_gives_fallback(agent: AgentDefinition, matcher: IntentMatcher, text: str) -> None:
    match = matcher.match(text)
    assert match == IntentMatch(intent=None, score=match.score, action="answer", reply=agent.fallback)
    assert match.score < agent.match_threshold


def test_matched_reply_is_the_intent_answer(agent: AgentDefinition, matcher: IntentMatcher) -> None:
    match = matcher.match("what are your opening hours")
    assert match.intent is not None
    assert match.reply == match.intent.answer
    assert match.action == "answer"
    assert 0.0 < match.score <= 1.0


def test_transfer_and_goodbye_phrases_use_agent_replies(
    agent: AgentDefinition, matcher: IntentMatcher
) -> None:
    assert matcher.match("I want to speak to a human about my refund") == IntentMatch(
        intent=None, score=1.0, action="transfer", reply=agent.transfer_reply
    )
    assert matcher.match("no that's all, bye") == IntentMatch(
        intent=None, score=1.0, action="hangup", reply=agent.goodbye
    )
    assert matcher.match_phrases("what are your hours") is None


def test_matching_is_deterministic(agent: AgentDefinition) -> None:
    first = [IntentMatcher(agent).match(text) for text, _ in PARAPHRASES]
    second = [IntentMatcher(agent).match(text) for text, _ in PARAPHRASES]
    assert first == second


def test_keywords_alone_can_match() -> None:
    agent = AgentDefinition(
        name="x",
        fallback="no",
        intents=[Intent(name="refunds", keywords=["refund"], answer="Refunds take a week.")],
    )
    assert outcome(IntentMatcher(agent).match("Where is my REFUND?!")) == "refunds"
    assert outcome(IntentMatcher(agent).match("where is my order")) == "fallback"


def test_threshold_is_respected() -> None:
    intents = [Intent(name="hours", examples=["what are your opening hours"], answer="Nine to five.")]
    lenient = AgentDefinition(name="x", fallback="no", intents=intents, match_threshold=0.1)
    strict = AgentDefinition(name="x", fallback="no", intents=intents, match_threshold=0.99)
    text = "hours for the shop in the city centre"
    assert outcome(IntentMatcher(lenient).match(text)) == "hours"
    assert outcome(IntentMatcher(strict).match(text)) == "fallback"


def test_ties_go_to_the_intent_listed_first() -> None:
    intents = [
        Intent(name="first", examples=["opening hours"], answer="A."),
        Intent(name="second", examples=["opening hours"], answer="B."),
    ]
    match = IntentMatcher(AgentDefinition(name="x", fallback="no", intents=intents)).match("opening hours")
    assert match.intent is not None
    assert match.intent.name == "first"


def test_normalisation() -> None:
    assert words("Where's my PARCEL?") == ["where", "is", "my", "parcel"]
    assert words("It hasn\u2019t ARRIVED!") == ["it", "has", "not", "arrived"]
    # Stems, with synonyms folded: a parcel is a package.
    assert content_terms("Where's my PARCEL? It hasn't arrived!") == ["wher", "packag", "not", "arriv"]
    assert content_terms("order number four four one seven, 4417") == ["order", "number"]
    assert phrase_terms("Can I talk to a real person?") == ["can", "i", "talk", "to", "real", "person"]
    assert {stem("opening"), stem("opens"), stem("opened"), stem("open")} == {"open"}
    assert stem("shipping") == stem("shipped") == stem("ships") == stem("ship")
    assert stem("cancelled") == stem("canceled") == stem("cancel")
    assert stem("addresses") == stem("address")
