"""Agent files: the shipped agent loads, and broken files are refused with useful messages."""

from __future__ import annotations

from pathlib import Path

import pytest

import voiceagent.agents
from voiceagent.agents import AgentDefinition, Intent, builtin_agent_path, load_agent
from voiceagent.errors import AgentDefinitionError

MINIMAL_YAML = """\
name: Test desk
fallback: Sorry, I can't help with that.
intents:
  - name: hours
    examples: [what are your hours]
    answer: We're open nine to five.
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problem(path: Path) -> str:
    with pytest.raises(AgentDefinitionError) as info:
        load_agent(path)
    return str(info.value)


def test_builtin_agent_loads() -> None:
    path = builtin_agent_path()
    assert path.name == "front-desk.yaml"
    assert path.is_file()
    agent = load_agent(path)
    assert agent.greeting
    names = {intent.name for intent in agent.intents}
    assert {
        "opening_hours",
        "order_status",
        "returns_refunds",
        "shipping",
        "payment_methods",
        "store_location",
        "speak_to_human",
        "goodbye",
        "cancel_order",
        "change_address",
    } <= names
    actions = {intent.name: intent.action for intent in agent.intents}
    assert actions["speak_to_human"] == "transfer"
    assert actions["goodbye"] == "hangup"


def test_builtin_answers_are_speakable() -> None:
    agent = load_agent(builtin_agent_path())
    for intent in agent.intents:
        assert len(intent.examples) >= 8, intent.name
        # Read aloud by TTS: no markdown, links or digits, and short.
        assert not any(mark in intent.answer for mark in ("*", "#", "http", "www", "[")), intent.name
        assert not any(char.isdigit() for char in intent.answer), intent.name
        assert intent.answer.count(".") + intent.answer.count("!") + intent.answer.count("?") <= 3


def test_examples_symlink_points_at_builtin() -> None:
    example = Path(__file__).parents[2] / "examples" / "agents" / "front-desk.yaml"
    assert example.is_symlink()
    assert example.resolve() == builtin_agent_path().resolve()


def test_minimal_yaml_gets_defaults(tmp_path: Path) -> None:
    agent = load_agent(write(tmp_path, "desk.yml", MINIMAL_YAML))
    assert agent.language == "en"
    assert agent.greeting is None
    assert agent.match_threshold == pytest.approx(0.35)
    assert "bye" in agent.goodbye_phrases
    assert "speak to a human" in agent.transfer_phrases
    assert agent.intents[0].action == "answer"


def test_toml_variant_loads(tmp_path: Path) -> None:
    toml = """\
name = "Test desk"
fallback = "Sorry."
match_threshold = 0.5

[[intents]]
name = "human"
keywords = ["manager"]
answer = "Putting you through."
action = "transfer"
"""
    agent = load_agent(write(tmp_path, "desk.toml", toml))
    assert agent.match_threshold == pytest.approx(0.5)
    assert agent.intents == [
        Intent(name="human", keywords=["manager"], answer="Putting you through.", action="transfer")
    ]


def test_missing_file(tmp_path: Path) -> None:
    message = problem(tmp_path / "nowhere.yaml")
    assert "nowhere.yaml" in message
    assert "not found" in message


def test_unsupported_suffix(tmp_path: Path) -> None:
    message = problem(write(tmp_path, "desk.json", "{}"))
    assert "desk.json" in message
    assert ".yaml" in message


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    message = problem(write(tmp_path, "broken.yaml", "name: [unclosed\nfallback: x\n"))
    assert message.startswith(f"{tmp_path / 'broken.yaml'}: invalid YAML")
    assert "line" in message
    assert "\n" not in message


def test_invalid_toml(tmp_path: Path) -> None:
    message = problem(write(tmp_path, "broken.toml", "name = \n"))
    assert "broken.toml: invalid TOML" in message


def test_list_at_top_level(tmp_path: Path) -> None:
    message = problem(write(tmp_path, "list.yaml", "- name: x\n- fallback: y\n"))
    assert "list.yaml" in message
    assert "mapping" in message
    assert "list" in message


def test_empty_file(tmp_path: Path) -> None:
    assert "empty" in problem(write(tmp_path, "empty.yaml", "# nothing\n"))


def test_missing_answer_names_field_path(tmp_path: Path) -> None:
    text = MINIMAL_YAML + "  - name: refunds\n    examples: [i want a refund]\n"
    message = problem(write(tmp_path, "desk.yaml", text))
    assert message == f"{tmp_path / 'desk.yaml'}: intents.1.answer: Field required"


def test_unknown_fields_are_reported_with_a_hint(tmp_path: Path) -> None:
    text = MINIMAL_YAML.replace("name: Test desk", "name: Test desk\ngreting: Hello!")
    text = text.replace("    answer:", "    answr: oops\n    answer:")
    lines = problem(write(tmp_path, "typo.yaml", text)).splitlines()
    assert len(lines) == 2
    assert any(
        line.endswith("typo.yaml: greting: Extra inputs are not permitted (did you mean 'greeting'?)")
        for line in lines
    )
    assert any(
        "typo.yaml: intents.0.answr: Extra inputs are not permitted (did you mean 'answer'?)" in line
        for line in lines
    )


def test_duplicate_intent_names(tmp_path: Path) -> None:
    text = MINIMAL_YAML + "  - name: hours\n    keywords: [open]\n    answer: Nine to five.\n"
    message = problem(write(tmp_path, "dupes.yaml", text))
    assert "dupes.yaml: intents: duplicate intent names: hours" in message


def test_intent_needs_examples_or_keywords(tmp_path: Path) -> None:
    text = MINIMAL_YAML + "  - name: empty\n    answer: Hm.\n"
    message = problem(write(tmp_path, "desk.yaml", text))
    assert "intents.1: intent 'empty' needs at least one of 'examples' or 'keywords'" in message


def test_bad_action_and_threshold(tmp_path: Path) -> None:
    text = MINIMAL_YAML.replace("    answer:", "    action: dance\n    answer:") + "match_threshold: 2\n"
    lines = problem(write(tmp_path, "desk.yaml", text)).splitlines()
    assert len(lines) == 2
    assert any("intents.0.action:" in line for line in lines)
    assert any("match_threshold:" in line for line in lines)


def test_models_are_frozen() -> None:
    agent = AgentDefinition(name="x", fallback="y")
    with pytest.raises(ValueError, match="frozen"):
        agent.name = "z"  # type: ignore[misc]


def test_package_all_is_sorted_and_complete() -> None:
    exported = voiceagent.agents.__all__
    assert exported == sorted(exported)
    for name in exported:
        assert hasattr(voiceagent.agents, name), name
