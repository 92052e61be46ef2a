"""Agent definitions: the schema of an agent file and the loader that turns one into a model.

An agent file (YAML or TOML) says who the agent is, what it greets callers with, which questions
it answers (intents with example phrasings) and what it says when it cannot help. Every model
forbids unknown fields, so a misspelt key is reported instead of silently ignored.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from voiceagent.errors import AgentDefinitionError

__all__ = [
    "Action",
    "AgentDefinition",
    "BargeInPolicy",
    "Intent",
    "Tool",
    "builtin_agent_path",
    "load_agent",
]

Action = Literal["answer", "transfer", "hangup"]
"""What the call does after the reply: keep talking, hand over to a human, or hang up."""

_BUILTIN_AGENT = "builtin/front-desk.yaml"
_YAML_SUFFIXES = frozenset({".yaml", ".yml"})
_TOML_SUFFIXES = frozenset({".toml"})


class Intent(BaseModel):
    """One thing callers ask about, how they tend to say it, and the spoken answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    examples: list[str] = Field(default_factory=list, description="Phrasings as a caller would say them.")
    keywords: list[str] = Field(
        default_factory=list, description="Words or short phrases that alone point at this intent."
    )
    answer: str = Field(
        min_length=1,
        description=(
            "Spoken reply: short sentences, no markdown. With a tool, a template: {name} is a captured"
            " value or a field of the tool's JSON answer ({a.b} for a nested one)."
        ),
    )
    action: Action = "answer"
    tool: str | None = Field(default=None, description="A tool (by name) to call before answering.")
    capture: dict[str, str] = Field(
        default_factory=dict,
        description="Values to send the tool: name -> regular expression over what the caller said.",
    )
    capture_prompt: str | None = Field(
        default=None, description="Said when a capture is not in the utterance (else the tool's fallback)."
    )
    dtmf: list[str] = Field(
        default_factory=list,
        description='Keypad digits that choose this intent on a phone call, e.g. ["0"] for an operator.',
    )

    @field_validator("capture")
    @classmethod
    def _valid_patterns(cls, capture: dict[str, str]) -> dict[str, str]:
        for name, pattern in capture.items():
            if not name.isidentifier():
                raise ValueError(f"capture name {name!r} must be an identifier")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"capture {name!r}: bad regular expression: {exc}") from exc
        return capture

    @field_validator("dtmf")
    @classmethod
    def _valid_digits(cls, digits: list[str]) -> list[str]:
        for d in digits:
            if not re.fullmatch(r"[0-9*#A-D]+", d):
                raise ValueError(f"dtmf: {d!r} is not keypad digits (0-9, *, #, A-D)")
        return digits

    @field_validator("examples", "keywords")
    @classmethod
    def _no_blank_entries(cls, values: list[str]) -> list[str]:
        if any(not value.strip() for value in values):
            raise ValueError("entries must not be blank")
        return values

    @model_validator(mode="after")
    def _needs_something_to_match(self) -> Intent:
        if not self.examples and not self.keywords:
            raise ValueError(f"intent {self.name!r} needs at least one of 'examples' or 'keywords'")
        return self


class Tool(BaseModel):
    """An integrator's HTTP endpoint the agent calls during a call (order lookup, booking...).

    The request is a signed JSON POST (Standard Webhooks headers, like webhooks); the answer is a
    JSON object whose fields fill the intent's answer template. Past ``timeout_s`` or on any
    failure the caller hears ``fallback`` instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    url: str = Field(pattern=r"^https?://[^\s/]+", description="http(s) URL the tool call is POSTed to.")
    timeout_s: float | None = Field(
        default=None, gt=0, le=10, description="Per call; the tool_call_timeout_s setting if unset."
    )
    secret_env: str | None = Field(
        default=None,
        description="Environment variable holding the whsec_ signing secret (kept out of agent files).",
    )
    fallback: str = Field(
        default="Sorry, I can't look that up right now. Please try again later.",
        min_length=1,
        description="Said when the tool times out, fails or answers something the template cannot use.",
    )


class BargeInPolicy(BaseModel):
    """How this agent takes being talked over (DESIGN §7); times are ms of caller voice or quiet.

    While the agent is audible, ``onset_ms`` of caller voice pauses it at once. Then: voice that
    lasts ``interrupt_ms`` stops it; a sound shorter than ``noise_max_ms`` followed by
    ``resume_gap_ms`` of quiet resumes it; anything in between is transcribed, and resumes it only if
    every word is in ``backchannels``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    onset_ms: int = Field(default=64, ge=20, le=500)
    # One VAD window this sure is enough to pause: a clear voice onset should not wait for a second.
    sure_onset_probability: float = Field(default=0.8, ge=0.5, le=1.0)
    interrupt_ms: int = Field(default=1000, ge=100, le=5000)
    noise_max_ms: int = Field(default=100, ge=0, le=1000)
    resume_gap_ms: int = Field(default=200, ge=40, le=2000)
    max_pause_ms: int = Field(default=1800, ge=200, le=10000)
    # Whisper turns an "uh-huh" it cannot place into a short, unsure guess ("It has."): a transcript
    # of at most ``unsure_max_words`` words with a mean log-probability below ``unsure_logprob`` is
    # taken as a sound, not words. Clear short interruptions ("Wait.", "Hold on.") score near 0.
    unsure_logprob: float = Field(default=-0.25, le=0.0)
    unsure_max_words: int = Field(default=2, ge=0, le=5)
    backchannels: list[str] = Field(
        default_factory=lambda: [
            "uh-huh",
            "uh huh",
            "mm-hm",
            "mm-hmm",
            "mhm",
            "mm",
            "hmm",
            "uh",
            "um",
            "okay",
            "ok",
            "right",
            "yeah",
            "yes",
            "yep",
            "sure",
            "i see",
            "got it",
            "alright",
            "all right",
            "cool",
            "great",
            "嗯",
            "对",
            "好",
            "是",
            "嗯嗯",
            "对对",
        ],
        description="Words a listener says to show they are following; they never stop the agent.",
    )


class AgentDefinition(BaseModel):
    """A whole agent: persona, greeting, intents and the replies used outside them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    persona: str = Field(default="", description="Who the agent is; used in the LLM system prompt.")
    language: str = "en"
    greeting: str | None = Field(default=None, description="Said when the call is answered.")
    intents: list[Intent] = Field(default_factory=list)
    tools: list[Tool] = Field(default_factory=list, description="HTTP endpoints intents may call.")
    fallback: str = Field(min_length=1, description="Said when no intent matches.")
    barge_in: BargeInPolicy = Field(default_factory=BargeInPolicy)
    goodbye: str = "Thank you for calling. Goodbye."
    goodbye_phrases: list[str] = Field(
        default_factory=lambda: [
            "bye",
            "goodbye",
            "good bye",
            "that's all",
            "that is all",
            "that will be all",
            "that's everything",
            "nothing else",
            "no more questions",
            "have a nice day",
            "have a good day",
        ]
    )
    transfer_phrases: list[str] = Field(
        default_factory=lambda: [
            "speak to a human",
            "talk to a human",
            "speak with a human",
            "talk with a human",
            "speak to a person",
            "talk to a person",
            "speak to someone",
            "talk to someone",
            "speak to somebody",
            "talk to somebody",
            "real person",
            "live person",
            "human being",
            "agent",
            "representative",
            "operator",
            "manager",
            "supervisor",
            "transfer me",
            "put me through",
        ]
    )
    transfer_reply: str = "Of course. Please hold while I put you through to a colleague."
    transfer_target: str | None = Field(
        default=None, description="Where a transfer goes (SIP URI or number); the engine decides if unset."
    )
    match_threshold: float = Field(default=0.35, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _tools_exist(self) -> AgentDefinition:
        names = [tool.name for tool in self.tools]
        if len(set(names)) != len(names):
            raise ValueError("tool names must be unique")
        unknown = sorted({i.tool for i in self.intents if i.tool is not None} - set(names))
        if unknown:
            raise ValueError(f"intents use undefined tool(s): {', '.join(unknown)}")
        return self

    @field_validator("intents")
    @classmethod
    def _unique_intent_names(cls, intents: list[Intent]) -> list[Intent]:
        seen: set[str] = set()
        duplicates: list[str] = []
        for intent in intents:
            if intent.name in seen and intent.name not in duplicates:
                duplicates.append(intent.name)
            seen.add(intent.name)
        if duplicates:
            raise ValueError(f"duplicate intent names: {', '.join(duplicates)}")
        return intents


def builtin_agent_path() -> Path:
    """Path of the shipped default agent, ``voiceagent/agents/builtin/front-desk.yaml``."""
    # The package is installed as plain files (never zipped), so the resource is a real path.
    return Path(str(files("voiceagent.agents").joinpath(_BUILTIN_AGENT)))


def load_agent(path: str | os.PathLike[str]) -> AgentDefinition:
    """Read and validate an agent file; YAML (``.yaml``/``.yml``) or TOML (``.toml``) by suffix.

    Raises :class:`AgentDefinitionError` naming the file, with one line per problem.
    """
    file = Path(path)
    label = str(path)
    data = _parse(file, label)
    if data is None:
        raise AgentDefinitionError(f"{label}: file is empty")
    if not isinstance(data, dict):
        raise AgentDefinitionError(
            f"{label}: expected a mapping of agent fields at the top level, got {type(data).__name__}"
        )
    try:
        return AgentDefinition.model_validate(data)
    except ValidationError as exc:
        raise AgentDefinitionError(_describe(label, exc)) from exc


def _parse(file: Path, label: str) -> Any:
    suffix = file.suffix.lower()
    if suffix not in _YAML_SUFFIXES | _TOML_SUFFIXES:
        raise AgentDefinitionError(
            f"{label}: unsupported agent file type {suffix or '(none)'!r}; use .yaml, .yml or .toml"
        )
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise AgentDefinitionError(f"{label}: agent file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentDefinitionError(f"{label}: cannot read agent file: {exc}") from exc
    if suffix in _TOML_SUFFIXES:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise AgentDefinitionError(f"{label}: invalid TOML: {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgentDefinitionError(f"{label}: invalid YAML: {_yaml_problem(exc)}") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    # PyYAML's own str() spans several lines with a source excerpt; keep the problem and position.
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def _describe(label: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = error["loc"]
        where = ".".join(str(part) for part in loc) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message += _spelling_hint(loc)
        lines.append(f"{label}: {where}: {message}")
    return "\n".join(lines)


def _spelling_hint(loc: tuple[int | str, ...]) -> str:
    # Only two levels have named fields: the agent itself and each intent.
    if len(loc) == 1:
        known = AgentDefinition.model_fields
    elif len(loc) == 3 and loc[0] == "intents":
        known = Intent.model_fields
    else:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
