"""``voiceagent webhooks add | list | deliveries | resend | rotate`` on a migrated SQLite file."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from standardwebhooks.webhooks import Webhook

from voiceagent.cli import cli
from voiceagent.store import CallStarted, create_engine, session_factory
from voiceagent.store import repository as repo
from voiceagent.webhooks import sign_headers
from voiceagent.webhooks.queue import fan_out


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}"
    monkeypatch.setenv("VOICEAGENT_DATABASE_URL", url)
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.exit_code == 0, result.output
    return url


async def _one_event(url: str) -> None:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s, s.begin():
            call = CallStarted("c1", "inbound", "sip", datetime(2026, 3, 1, tzinfo=UTC))
            await repo.record_call_started(s, call=call)
            await fan_out(s)
    finally:
        await engine.dispose()


def test_add_list_deliveries_resend_rotate(db_url: str) -> None:
    runner = CliRunner()
    added = runner.invoke(
        cli, ["webhooks", "add", "https://example.com/h", "--events", "call.started,call.ended"]
    )
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip()
    assert secret.startswith("whsec_")
    Webhook(secret).verify("{}", sign_headers([secret], msg_id="m", body="{}"))  # a usable secret
    endpoint_id = added.stderr.split()[1].rstrip(":")

    listed = runner.invoke(cli, ["webhooks", "list"])
    assert endpoint_id in listed.stdout
    assert "call.started,call.ended" in listed.stdout
    assert secret not in listed.stdout

    asyncio.run(_one_event(db_url))
    log = runner.invoke(cli, ["webhooks", "deliveries", "--endpoint", endpoint_id])
    assert log.exit_code == 0, log.output
    (line,) = log.stdout.splitlines()
    assert "call.started:c1  pending  attempts=0  code=-" in line
    delivery_id = line.split()[0]
    assert runner.invoke(cli, ["webhooks", "resend", delivery_id]).stdout.strip() == f"queued {delivery_id}"
    assert runner.invoke(cli, ["webhooks", "resend", "999"]).exit_code == 1

    rotated = runner.invoke(cli, ["webhooks", "rotate", endpoint_id, "--overlap-s", "60"])
    assert rotated.exit_code == 0, rotated.output
    assert rotated.stdout.strip().startswith("whsec_")
    assert rotated.stdout.strip() != secret
    assert runner.invoke(cli, ["webhooks", "rotate", "ep_nope"]).exit_code == 1


def test_bad_input_is_a_one_line_error(db_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["webhooks", "add", "https://example.com/h", "--events", "call.exploded"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown event type")
    result = runner.invoke(cli, ["webhooks", "add", "gopher://x", "--events", "call.ended"])
    assert result.exit_code == 2
    assert "http(s)" in result.stderr
