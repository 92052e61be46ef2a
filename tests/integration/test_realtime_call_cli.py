"""`voiceagent call` with engine=realtime: the file call's turns are answered by a worker process."""

import json
import os
import subprocess
import sys

import pytest

from .corpus import question

pytestmark = pytest.mark.slow


def test_voiceagent_call_on_a_worker() -> None:
    env = {**os.environ, "VOICEAGENT_WORKER_TOKEN": "cli-token"}
    env.pop("VOICEAGENT_REDIS_URL", None)
    cmd = [
        sys.executable,
        "-m",
        "voiceagent",
        "worker",
        "--engine",
        "scripted",
        "--port",
        "0",
        "--reply-ms",
        "600",
    ]
    worker = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        url = json.loads(worker.stdout.readline())["url"]
        call_env = {**env, "VOICEAGENT_ENGINE": "realtime", "VOICEAGENT_REALTIME_URL": url}
        call = [sys.executable, "-m", "voiceagent", "call", "--fast", "--no-log", "--json"]
        wav = str(question("payment").path())
        done = subprocess.run(
            [*call, wav],
            env={**call_env, "VOICEAGENT_REALTIME_TOKEN": "cli-token"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert [t["reply_text"] for t in report["turns"]] == ["Reply number 1."]
        assert report["first_audio_ms"] is not None

        refused = subprocess.run(
            [*call, wav],
            env={**call_env, "VOICEAGENT_REALTIME_TOKEN": "wrong"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 2
        assert "rejected the token" in refused.stderr
    finally:
        worker.terminate()
        assert worker.wait(10) == 0
