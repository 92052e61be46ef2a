"""The agent brain: agent definitions, intent matching, and the brains the cascade engine talks to."""

from voiceagent.agents.brain import Brain, FallbackBrain, LLMBrain, Message, RuleBrain, build_brain
from voiceagent.agents.definition import (
    Action,
    AgentDefinition,
    BargeInPolicy,
    Intent,
    builtin_agent_path,
    load_agent,
)
from voiceagent.agents.matcher import IntentMatch, IntentMatcher

__all__ = [
    "Action",
    "AgentDefinition",
    "BargeInPolicy",
    "Brain",
    "FallbackBrain",
    "Intent",
    "IntentMatch",
    "IntentMatcher",
    "LLMBrain",
    "Message",
    "RuleBrain",
    "build_brain",
    "builtin_agent_path",
    "load_agent",
]
