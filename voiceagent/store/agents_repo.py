"""Agent definitions as stored for the console and the REST API. Keyword-only; none commits.

The definition is kept as the JSON of a validated :class:`~voiceagent.agents.AgentDefinition`;
validating is the caller's job, so this module knows only about rows.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from voiceagent.errors import VoiceAgentError
from voiceagent.store.models import Agent, utcnow

__all__ = [
    "AgentNameTakenError",
    "create_agent",
    "delete_agent",
    "get_agent",
    "list_agents",
    "new_agent_id",
    "update_agent",
]


class AgentNameTakenError(VoiceAgentError):
    """Another agent already has this name (names are unique)."""


def new_agent_id() -> str:
    """A fresh, URL-safe agent id: ``agt_`` and 16 hex characters."""
    return f"agt_{secrets.token_hex(8)}"


async def _name_taken(session: AsyncSession, name: str, *, other_than: str | None = None) -> bool:
    query = select(Agent.id).where(Agent.name == name)
    if other_than is not None:
        query = query.where(Agent.id != other_than)
    return (await session.scalars(query.limit(1))).first() is not None


async def _flush(session: AsyncSession, name: str) -> None:
    # The check above narrows the window; the unique constraint closes it (a concurrent insert).
    try:
        await session.flush()
    except IntegrityError as exc:
        raise AgentNameTakenError(f"an agent named {name!r} already exists") from exc


async def list_agents(
    session: AsyncSession, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[Agent], str | None]:
    """Agents in id order, ``limit`` at a time; the cursor is the last id seen (None: last page)."""
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    query = select(Agent).order_by(Agent.id).limit(limit + 1)
    if cursor is not None:
        query = query.where(Agent.id > cursor)
    rows = list((await session.scalars(query)).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, rows[-1].id


async def get_agent(session: AsyncSession, *, agent_id: str) -> Agent | None:
    """The agent with this id, or None."""
    return await session.get(Agent, agent_id)


async def create_agent(
    session: AsyncSession, *, name: str, definition: dict[str, Any], agent_id: str | None = None
) -> Agent:
    """Insert an agent; :class:`AgentNameTakenError` if the name is in use."""
    if await _name_taken(session, name):
        raise AgentNameTakenError(f"an agent named {name!r} already exists")
    now = utcnow()
    agent = Agent(
        id=agent_id or new_agent_id(), name=name, definition=definition, created_at=now, updated_at=now
    )
    session.add(agent)
    await _flush(session, name)
    return agent


async def update_agent(
    session: AsyncSession, *, agent_id: str, name: str, definition: dict[str, Any]
) -> Agent | None:
    """Replace an agent's name and definition; None if there is no such agent."""
    agent = await session.get(Agent, agent_id)
    if agent is None:
        return None
    if await _name_taken(session, name, other_than=agent_id):
        raise AgentNameTakenError(f"an agent named {name!r} already exists")
    agent.name = name
    agent.definition = definition
    agent.updated_at = utcnow()
    await _flush(session, name)
    return agent


async def delete_agent(session: AsyncSession, *, agent_id: str) -> bool:
    """Delete an agent; False if there was none."""
    result = await session.execute(delete(Agent).where(Agent.id == agent_id).returning(Agent.id))
    return result.first() is not None
