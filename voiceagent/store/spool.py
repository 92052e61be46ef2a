"""The call-log writer's disk spool: append-only JSONL segments, replayed oldest first.

Each batch that cannot reach the database becomes one segment file, written to a temporary name,
fsync'd, then renamed, so a segment on disk is always whole. Segment numbers are reserved when the
records leave the in-memory queue, not when the file is written, so the order of the numbers is the
order in which the media layer submitted the records, even when two segments are written at once.
The methods block (file I/O): the writer calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from voiceagent.errors import StoreError
from voiceagent.store.records import LogRecord, record_from_json, record_to_json

__all__ = ["Spool"]

log = logging.getLogger(__name__)

_SUFFIX = ".jsonl"
_TMP_SUFFIX = ".jsonl.tmp"
REJECTED_NAME = "rejected.jsonl"


class Spool:
    """A directory of numbered JSONL segments; thread-safe for one reader and many writers."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).expanduser()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create spool directory {self.directory}: {exc}") from exc
        self._lock = threading.Lock()
        self._ready: set[int] = set()
        self._salvage_temporaries()
        for path in self.directory.glob(f"*{_SUFFIX}"):
            if path.name != REJECTED_NAME and path.stem.isdigit():
                self._ready.add(int(path.stem))
        self._next = max(self._ready, default=-1) + 1
        if self._ready:
            log.info("call-log spool %s holds %d segments to replay", self.directory, len(self._ready))

    def _salvage_temporaries(self) -> None:
        # A crash between write and rename leaves a .tmp; whole lines in it are still good records.
        for tmp in self.directory.glob(f"*{_TMP_SUFFIX}"):
            tmp.rename(tmp.with_name(tmp.name.removesuffix(".tmp")))

    def reserve(self) -> int:
        """The number of the next segment: call when records leave the queue, in that order."""
        with self._lock:
            seq = self._next
            self._next += 1
        return seq

    def __len__(self) -> int:
        with self._lock:
            return len(self._ready)

    def oldest(self) -> int | None:
        """The lowest segment number on disk, or None when the spool is empty."""
        with self._lock:
            return min(self._ready, default=None)

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:012d}{_SUFFIX}"

    def write(self, seq: int, records: Sequence[LogRecord]) -> None:
        """Write segment ``seq`` durably (file and directory entry fsync'd)."""
        final = self._path(seq)
        tmp = final.with_name(final.name + ".tmp")
        lines = "".join(
            json.dumps(record_to_json(r), separators=(",", ":"), default=str) + "\n" for r in records
        )
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(final)
        self._fsync_directory()
        with self._lock:
            self._ready.add(seq)

    def read(self, seq: int) -> list[LogRecord]:
        """The records of segment ``seq``; lines that do not parse are logged and skipped."""
        records: list[LogRecord] = []
        with open(self._path(seq), encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                try:
                    records.append(record_from_json(json.loads(line)))
                except ValueError as exc:  # json.JSONDecodeError is a ValueError too
                    log.error("call-log spool %s line %d skipped: %s", self._path(seq), number, exc)
        return records

    def remove(self, seq: int) -> None:
        """Forget segment ``seq`` once its records are in the database."""
        self._path(seq).unlink(missing_ok=True)
        self._fsync_directory()
        with self._lock:
            self._ready.discard(seq)

    def reject(self, records: Sequence[LogRecord], reason: str) -> None:
        """Keep records the database refuses (bad data, not a failure) in ``rejected.jsonl``."""
        with open(self.directory / REJECTED_NAME, "a", encoding="utf-8") as f:
            for record in records:
                f.write(_dumps({"reason": reason, "record": record_to_json(record)}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _fsync_directory(self) -> None:
        # The rename or unlink is durable only once the directory entry itself is on disk.
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _dumps(obj: object) -> str:
    # default=str: a value JSON cannot hold is kept as its text rather than losing the record.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)
