"""Keep every test (and every `voiceagent` subprocess a test starts) off the user's own data.

Without this, a test that runs the CLI on default settings writes its call log, spool and
recordings under ~/.local/share/voiceagent, and a stale database there (a migration from another
branch) fails tests that have nothing to do with it. Tests that want a database of their own
still set one; this only changes the defaults they inherit.
"""

import os
import shutil
import tempfile
from pathlib import Path

_DATA = Path(tempfile.mkdtemp(prefix="voiceagent-tests-"))


def pytest_configure() -> None:
    os.environ.setdefault("VOICEAGENT_DATABASE_URL", f"sqlite+aiosqlite:///{_DATA / 'calls.db'}")
    os.environ.setdefault("VOICEAGENT_SPOOL_DIR", str(_DATA / "spool"))
    os.environ.setdefault("VOICEAGENT_RECORDINGS_DIR", str(_DATA / "recordings"))


def pytest_unconfigure() -> None:
    shutil.rmtree(_DATA, ignore_errors=True)
