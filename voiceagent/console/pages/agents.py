"""Agents: list them, edit one as YAML (validated by AgentDefinition before it is stored), add one."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from voiceagent.agents import AgentDefinition
from voiceagent.api.deps import StateDep
from voiceagent.console.admins import LoggedIn
from voiceagent.console.deps import ChangeDep, LoginDep
from voiceagent.console.templating import render
from voiceagent.store import agents_repo
from voiceagent.store.agents_repo import AgentNameTakenError

__all__ = ["parse_definition", "router"]

logger = logging.getLogger(__name__)

router = APIRouter()

_NAME_MAX = 128  # agents.name is VARCHAR(128)
_TEXT_MAX = 200_000
_NEW_AGENT = """\
name: new-agent
greeting: Hello, how can I help?
fallback: Sorry, I cannot help with that.
intents: []
"""


def parse_definition(text: str) -> tuple[AgentDefinition | None, list[str]]:
    """The definition in ``text`` (YAML), or None and one message per problem."""
    if "\x00" in text:
        return None, ["the definition may not contain NUL characters"]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return None, [f"not valid YAML: {getattr(exc, 'problem', None) or exc}{where}"]
    if not isinstance(data, dict):
        return None, ["expected a mapping of agent fields (name:, greeting:, intents: ...) at the top level"]
    try:
        definition = AgentDefinition.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
        return None, problems
    if len(definition.name) > _NAME_MAX:
        return None, [f"name: at most {_NAME_MAX} characters"]
    return definition, []


def _as_yaml(definition: dict[str, Any]) -> str:
    return yaml.safe_dump(definition, sort_keys=False, allow_unicode=True, width=100)


@router.get("/agents")
async def agents_page(request: Request, login: LoginDep, state: StateDep) -> Response:
    """Every agent."""
    async with state.sessions() as session:
        agents, _ = await agents_repo.list_agents(session, limit=500)
    return render(request, "agents.html", login=login, active="agents", agents=agents)


@router.get("/agents/new")
async def new_agent_page(request: Request, login: LoginDep) -> Response:
    """An empty form, pre-filled with a minimal valid agent."""
    example = _NEW_AGENT
    return render(
        request, "agent_edit.html", login=login, active="agents", agent=None, text=example, problems=[]
    )


@router.get("/agents/{agent_id}")
async def edit_agent_page(request: Request, agent_id: str, login: LoginDep, state: StateDep) -> Response:
    """The agent's definition as YAML in an editor."""
    async with state.sessions() as session:
        agent = None if "\x00" in agent_id else await agents_repo.get_agent(session, agent_id=agent_id)
    if agent is None:
        return render(request, "not_found.html", login=login, what=f"agent {agent_id}", status_code=404)
    text = _as_yaml(agent.definition)
    return render(
        request, "agent_edit.html", login=login, active="agents", agent=agent, text=text, problems=[]
    )


async def _save(
    request: Request, state: StateDep, login: LoggedIn, agent_id: str | None, text: str
) -> Response:
    definition, problems = parse_definition(text)
    agent = None
    if definition is not None:
        data = definition.model_dump(mode="json")
        try:
            async with state.sessions() as session, session.begin():
                if agent_id is None:
                    agent = await agents_repo.create_agent(session, name=definition.name, definition=data)
                else:
                    agent = await agents_repo.update_agent(
                        session, agent_id=agent_id, name=definition.name, definition=data
                    )
                    if agent is None:
                        return render(
                            request, "not_found.html", login=login, what=f"agent {agent_id}", status_code=404
                        )
        except AgentNameTakenError as exc:
            problems = [str(exc)]
    if problems:
        current = None
        if agent_id is not None:
            async with state.sessions() as session:
                current = await agents_repo.get_agent(session, agent_id=agent_id)
        return render(
            request,
            "agent_edit.html",
            login=login,
            active="agents",
            agent=current,
            text=text,
            problems=problems,
            status_code=422,
        )
    assert agent is not None
    logger.info("console: %s saved agent %s (%s)", login.email, agent.id, agent.name)
    return RedirectResponse(f"/console/agents/{agent.id}?saved=1", status_code=303)


@router.post("/agents/new")
async def create_agent(
    request: Request,
    login: ChangeDep,
    state: StateDep,
    definition: Annotated[str, Form(max_length=_TEXT_MAX)],
) -> Response:
    """Validate and store a new agent."""
    return await _save(request, state, login, None, definition)


@router.post("/agents/{agent_id}")
async def save_agent(
    request: Request,
    agent_id: str,
    login: ChangeDep,
    state: StateDep,
    definition: Annotated[str, Form(max_length=_TEXT_MAX)],
) -> Response:
    """Validate and store an edited agent; the form comes back with the problems if it does not validate."""
    if "\x00" in agent_id:
        return render(request, "not_found.html", login=login, what="that agent", status_code=404)
    return await _save(request, state, login, agent_id, definition)
