"""voiceagent: answers phone and browser calls with a voice agent."""

__version__ = "0.1.0"
__all__ = ["__version__"]
