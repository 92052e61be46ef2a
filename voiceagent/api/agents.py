"""``/v1/agents``: agent definitions, validated by :class:`~voiceagent.agents.AgentDefinition`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from voiceagent.agents import AgentDefinition
from voiceagent.api.deps import SessionDep, require
from voiceagent.api.errors import InvalidRequestError, NotFoundError, error_responses
from voiceagent.api.schemas import AgentOut, AgentPage
from voiceagent.store import agents_repo
from voiceagent.store.apikeys import Scope

__all__ = ["router"]

router = APIRouter(prefix="/v1/agents", tags=["agents"], responses=error_responses(401, 403, 422, 503))

_NAME_MAX = 128  # agents.name is VARCHAR(128)


def _find_nul(value: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    if isinstance(value, str):
        return loc if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _find_nul(item, (*loc, key))
        if found is not None:
            return found
    return None


def _storable(definition: AgentDefinition) -> dict[str, Any]:
    """The definition as JSON, or a 422 for what validates but the database cannot hold."""
    if len(definition.name) > _NAME_MAX:
        raise InvalidRequestError(f"name: at most {_NAME_MAX} characters", loc=("body", "name"))
    data = definition.model_dump(mode="json")
    where = _find_nul(data, ("body",))
    if where is not None:  # Postgres text and JSONB cannot hold U+0000
        raise InvalidRequestError("text may not contain NUL characters", loc=where)
    return data


@router.get("", response_model=AgentPage, dependencies=[require(Scope.AGENTS_READ)])
async def list_agents(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> AgentPage:
    """Agents in id order."""
    if cursor is not None and "\x00" in cursor:
        raise InvalidRequestError("cursor: not a cursor this API returned", loc=("query", "cursor"))
    rows, next_cursor = await agents_repo.list_agents(session, limit=limit, cursor=cursor)
    return AgentPage(items=[AgentOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=AgentOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[require(Scope.AGENTS_WRITE)],
    responses=error_responses(400, 409),
)
async def create_agent(definition: AgentDefinition, session: SessionDep) -> AgentOut:
    """Store a new agent; 409 if its name is taken, 422 with field errors if it does not validate."""
    data = _storable(definition)
    async with session.begin():
        agent = await agents_repo.create_agent(session, name=definition.name, definition=data)
    return AgentOut.model_validate(agent)


@router.get(
    "/{agent_id}",
    response_model=AgentOut,
    dependencies=[require(Scope.AGENTS_READ)],
    responses=error_responses(404),
)
async def get_agent(agent_id: str, session: SessionDep) -> AgentOut:
    """One agent."""
    agent = None if "\x00" in agent_id else await agents_repo.get_agent(session, agent_id=agent_id)
    if agent is None:
        raise NotFoundError(f"no agent {agent_id!r}")
    return AgentOut.model_validate(agent)


@router.put(
    "/{agent_id}",
    response_model=AgentOut,
    dependencies=[require(Scope.AGENTS_WRITE)],
    responses=error_responses(400, 404, 409),
)
async def replace_agent(agent_id: str, definition: AgentDefinition, session: SessionDep) -> AgentOut:
    """Replace an agent's definition (and name); 404 if there is no such agent."""
    data = _storable(definition)
    agent = None
    if "\x00" not in agent_id:
        async with session.begin():
            agent = await agents_repo.update_agent(
                session, agent_id=agent_id, name=definition.name, definition=data
            )
    if agent is None:
        raise NotFoundError(f"no agent {agent_id!r}")
    return AgentOut.model_validate(agent)


@router.delete(
    "/{agent_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=[require(Scope.AGENTS_WRITE)],
    responses=error_responses(404),
)
async def delete_agent(agent_id: str, session: SessionDep) -> Response:
    """Delete an agent; 404 if there is no such agent."""
    deleted = False
    if "\x00" not in agent_id:
        async with session.begin():
            deleted = await agents_repo.delete_agent(session, agent_id=agent_id)
    if not deleted:
        raise NotFoundError(f"no agent {agent_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
