"""Prometheus metrics of one worker, on a registry of its own (several workers may share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "WorkerMetrics"]

# Handing an event to an engine takes microseconds; a model step takes milliseconds.
_STEP_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_FIRST_AUDIO_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class WorkerMetrics:
    """What a worker exports at ``GET /metrics``."""

    def __init__(self, *, capacity: int, engine: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"engine": engine}
        self.capacity = Gauge(
            "voiceagent_worker_capacity",
            "Sessions this worker serves at once.",
            ["engine"],
            registry=self.registry,
        ).labels(**labels)
        self.capacity.set(capacity)
        self.active = Gauge(
            "voiceagent_worker_active_sessions", "Sessions open now.", ["engine"], registry=self.registry
        ).labels(**labels)
        self.draining = Gauge(
            "voiceagent_worker_draining", "1 while the worker takes no new sessions.", registry=self.registry
        )
        self.sessions = Counter(
            "voiceagent_worker_sessions",
            "Session requests by outcome: accepted, refused (full or draining), unauthorized.",
            ["outcome"],
            registry=self.registry,
        )
        self.step = Histogram(
            "voiceagent_worker_step_seconds",
            "Time the engine took to accept one client event (its step on the event loop).",
            buckets=_STEP_BUCKETS,
            registry=self.registry,
        )
        self.first_audio = Histogram(
            "voiceagent_worker_first_audio_seconds",
            "From response.create received to the first audio delta written to the socket.",
            buckets=_FIRST_AUDIO_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "voiceagent_worker_queue_depth",
            "Server events produced by engines and not yet written to their sockets.",
            registry=self.registry,
        )
        self.protocol_errors = Counter(
            "voiceagent_worker_protocol_errors",
            "Client messages that were not valid events.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
