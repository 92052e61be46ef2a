"""The worker pool across processes: real Redis, `voiceagent worker` processes, media processes.

Workers run the light scripted engine (tone replies numbered from session memory), so what is
measured is placement, failover and drain, not models. Three phases, about a minute in all:

1. 44 calls placed at once from two media processes on two workers of capacity 20: 40 land,
   4 are refused cleanly, no worker ever holds more than 20.
2. 16 two-turn calls; one worker is SIGKILLed mid-call: its calls go on on the other worker and
   every call hears both replies, numbered 1 and 2 (the conversation restored from memory).
3. A worker is drained with SIGTERM mid-call: /readyz says 503, new calls go elsewhere, none of its
   calls is cut, and it exits 0 once they are done.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from .corpus import AUDIO_DIR

pytestmark = pytest.mark.slow

REDIS_URL = "redis://127.0.0.1:6379/0"
TOKEN = "pool-test-token"
CALLER = str(AUDIO_DIR / "payment.wav")


class Pool:
    """The processes of one test, all stopped at the end."""

    def __init__(self) -> None:
        self.prefix = f"voiceagent-test:{uuid.uuid4().hex}:"
        self.env = {
            **os.environ,
            "VOICEAGENT_REDIS_URL": REDIS_URL,
            "VOICEAGENT_POOL_PREFIX": self.prefix,
            "VOICEAGENT_WORKER_TOKEN": TOKEN,
            "VOICEAGENT_REALTIME_TOKEN": TOKEN,
            "VOICEAGENT_WORKER_HEARTBEAT_S": "0.5",
            "VOICEAGENT_WORKER_TTL_S": "2",
        }
        self.procs: list[subprocess.Popen[str]] = []

    def worker(self, *, capacity: int = 20, reply_ms: int = 1500) -> tuple[subprocess.Popen[str], str]:
        cmd = [sys.executable, "-m", "voiceagent", "worker", "--engine", "scripted", "--port", "0"]
        cmd += ["--capacity", str(capacity), "--reply-ms", str(reply_ms)]
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert line["event"] == "listening"
        return proc, f"http://127.0.0.1:{line['port']}"

    def media(self, calls: int, *, turns: int = 1, start_in_s: float = 0.0) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "voiceagent.worker.media_load", "--calls", str(calls)]
        cmd += [*[CALLER] * turns, "--gap-ms", "2500", "--start-at", str(time.time() + start_in_s)]
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{self.prefix}*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def pool() -> Iterator[Pool]:
    made = Pool()
    yield made
    made.close()


def _get(base: str, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(base + path, timeout=5) as response:
            body = response.read().decode()
            return response.status, json.loads(body) if path == "/load" else body
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _results(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    calls: list[dict[str, Any]] = json.loads(out)["calls"]
    return calls


def _wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _forget_conversations(calls: list[dict[str, Any]]) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for call in calls:
        if call.get("conversation_id"):
            keys = list(client.scan_iter(match=f"voiceagent:call:{call['conversation_id']}:*"))
            if keys:
                client.delete(*keys)
    client.close()


def _answered_both(call: dict[str, Any]) -> bool:
    replies = [(t["reply_text"], t["status"]) for t in call["turns"]]
    return replies == [("Reply number 1.", "done"), ("Reply number 2.", "done")]


def test_placement_failover_and_drain(pool: Pool) -> None:
    (a, a_url), (b, b_url) = pool.worker(), pool.worker()
    ids = {a_url: _get(a_url, "/load")[1]["worker_id"], b_url: _get(b_url, "/load")[1]["worker_id"]}

    # 1. 44 calls at once on 20 + 20 slots.
    first = [pool.media(22, start_in_s=6.0), pool.media(22, start_in_s=6.0)]
    calls = [c for proc in first for c in _results(proc)]
    _forget_conversations(calls)
    placed = [c for c in calls if c["ok"]]
    refused = [c for c in calls if not c["ok"]]
    assert len(placed) == 40
    assert len(refused) == 4
    assert all(c["error"].startswith("NoWorkerError") for c in refused)
    assert Counter(c["workers"][0] for c in placed) == {ids[a_url]: 20, ids[b_url]: 20}
    assert all(c["turns"][0]["reply_text"] == "Reply number 1." for c in placed)
    assert _get(a_url, "/load")[1]["peak"] == 20
    assert _get(b_url, "/load")[1]["peak"] == 20

    # 2. Kill a worker mid-call: its calls go on on the other one.
    second = [pool.media(8, turns=2, start_in_s=3.0), pool.media(8, turns=2, start_in_s=3.0)]
    _wait_for(lambda: _get(a_url, "/load")[1]["active"] == 8 and _get(b_url, "/load")[1]["active"] == 8)
    time.sleep(1.0)  # into the first reply
    a.kill()
    calls = [c for proc in second for c in _results(proc)]
    _forget_conversations(calls)
    assert all(c["ok"] for c in calls), [c["error"] for c in calls if not c["ok"]]
    moved = [c for c in calls if c["workers"][0] == ids[a_url]]
    assert len(moved) == 8
    assert all(c["workers"] == [ids[a_url], ids[b_url]] and c["failovers"] == 1 for c in moved)
    assert all(_answered_both(c) for c in calls), [c["turns"] for c in calls if not _answered_both(c)]

    # 3. Drain a worker mid-call: nothing is cut, new calls go elsewhere.
    _c, c_url = pool.worker()
    third = pool.media(6, turns=2, start_in_s=2.5)
    _wait_for(lambda: _get(b_url, "/load")[1]["active"] == 3 and _get(c_url, "/load")[1]["active"] == 3)
    b.terminate()
    _wait_for(lambda: _get(b_url, "/readyz")[0] == 503)
    late = pool.media(3, start_in_s=0.0)
    calls = _results(third)
    late_calls = _results(late)
    _forget_conversations(calls + late_calls)
    assert all(c["ok"] and c["failovers"] == 0 and _answered_both(c) for c in calls)
    assert Counter(c["workers"][0] for c in calls) == {ids[b_url]: 3, _get(c_url, "/load")[1]["worker_id"]: 3}
    assert all(c["ok"] and c["workers"][0] != ids[b_url] for c in late_calls)
    assert b.wait(20) == 0
    assert b.stdout is not None
    assert json.loads(b.stdout.read().strip().splitlines()[-1]) == {"event": "drained", "active": 0}
