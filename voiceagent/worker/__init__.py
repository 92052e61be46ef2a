"""Model workers: ``voiceagent worker`` serves an engine over the Realtime protocol; Redis pools them.

See docs/workers.md for the protocol subset, endpoints, metrics, the registry and placement.
"""

from voiceagent.worker.registry import Placement, WorkerInfo, WorkerRegistry, WorkerStatus
from voiceagent.worker.server import REALTIME_PATH, WorkerServer

__all__ = ["REALTIME_PATH", "Placement", "WorkerInfo", "WorkerRegistry", "WorkerServer", "WorkerStatus"]
