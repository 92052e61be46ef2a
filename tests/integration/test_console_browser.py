"""The admin console in Debian's headless Chromium (Playwright, never a downloaded browser).

A real server (uvicorn on a free port) runs the app with a live-call registry; real calls go through
the media layer (``voiceagent.filecall`` with a shipped question WAV, the CPU cascade engine) and are
written to the call log, so the console shows what a deployment would: the call appears live, ends,
shows up in the history with its recording, transcript and timeline. With
VOICEAGENT_UPDATE_SCREENSHOTS=1 the main pages are saved as docs/console-*.png (for the README).
"""

import asyncio
import os
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from playwright.async_api import Browser, Page, async_playwright

from voiceagent.agents import AgentDefinition
from voiceagent.api import create_app
from voiceagent.calllog import open_call_log
from voiceagent.config import Settings, load_settings
from voiceagent.console.admins import create_admin
from voiceagent.engines.cascade import CascadeEngine
from voiceagent.filecall import CallReport, call_file
from voiceagent.media.live import LiveCallRegistry
from voiceagent.store import agents_repo, create_engine, session_factory
from voiceagent.store.migrate import upgrade_async
from voiceagent.store.writer import CallLogWriter

from .corpus import REPO_ROOT, question

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

CHROMIUM = os.environ.get("VOICEAGENT_CHROMIUM", "/usr/bin/chromium")
UPDATE_SCREENSHOTS = os.environ.get("VOICEAGENT_UPDATE_SCREENSHOTS") == "1"
EMAIL, PASSWORD = "ops@example.com", "a long console password"


@dataclass
class Served:
    url: str
    settings: Settings
    live: LiveCallRegistry
    writer: CallLogWriter
    calls: list[asyncio.Task[CallReport]] = field(default_factory=list)


class _Receiver:
    """A webhook receiver on loopback: answers 204 and keeps each message's webhook-id."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = {
            k.lower(): v for k, v in (ln.split(": ", 1) for ln in head.split("\r\n")[1:] if ": " in ln)
        }
        await reader.readexactly(int(headers.get("content-length", "0")))
        self.ids.append(headers.get("webhook-id", ""))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


@pytest_asyncio.fixture(loop_scope="session")
async def served(tmp_path: Path, agent: AgentDefinition) -> AsyncIterator[Served]:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'console.db'}",
        recordings_dir=tmp_path / "recordings",
        spool_dir=tmp_path / "spool",
        console_poll_ms=250,
    )
    engine = create_engine(settings.database_url)
    try:
        await upgrade_async(engine)
        async with session_factory(engine)() as s, s.begin():
            await create_admin(s, email=EMAIL, password=PASSWORD, role="admin")
            definition = agent.model_dump(mode="json")
            await agents_repo.create_agent(s, name=agent.name, definition=definition, agent_id="agt_front")
    finally:
        await engine.dispose()
    live = LiveCallRegistry()
    app = create_app(settings, live=live)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # A bounded graceful shutdown: a browser left open by a failed test must not hang the session.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn has a flag, not an event
            await asyncio.sleep(0.02)
        async with open_call_log(settings) as writer:
            assert writer is not None
            served = Served(f"http://127.0.0.1:{port}", settings, live, writer)
            try:
                yield served
            finally:  # calls a failed test left running end before their call log closes
                for call in served.calls:
                    call.cancel()
                await asyncio.gather(*served.calls, return_exceptions=True)
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
        )
        yield browser
        await browser.close()


async def _until_js(page: Page, expression: str, timeout_s: float = 20.0) -> Any:
    """Poll ``expression`` until it is truthy. Not ``wait_for_function``: that evaluates a string in
    the page, which the console's Content-Security-Policy (no 'unsafe-eval') rightly refuses."""
    async with asyncio.timeout(timeout_s):
        while not (value := await page.evaluate(expression)):  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(0.1)
    return value


async def _shot(page: Page, name: str, tmp_path: Path) -> None:
    # Always taken (it exercises the page's rendering); kept under docs/ only when asked.
    target = REPO_ROOT / "docs" if UPDATE_SCREENSHOTS else tmp_path
    await page.screenshot(path=str(target / f"console-{name}.png"), full_page=False)


def _start_call(served: Served, engine: CascadeEngine, name: str, tmp_path: Path) -> asyncio.Task[CallReport]:
    record = served.settings.recordings_dir / f"{name}.wav"
    task = asyncio.create_task(
        call_file(
            engine,
            question("opening-hours").path(),
            served.settings,
            record=record,
            call_log=served.writer,
            live=served.live,
            agent_name="front-desk",
        ),
        name=f"call:{name}",
    )
    served.calls.append(task)
    return task


async def test_console_in_chromium(
    served: Served, browser: Browser, engine: CascadeEngine, tmp_path: Path
) -> None:
    await asyncio.to_thread(served.settings.recordings_dir.mkdir, parents=True, exist_ok=True)
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    base = served.url

    # -- log in: an anonymous visit lands on the login form
    await page.goto(f"{base}/console/live")
    assert "/console/login" in page.url
    await _shot(page, "login", tmp_path)
    await page.fill("input[name=email]", EMAIL)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/console/live")
    cookie = next(c for c in await context.cookies() if c["name"] == "va_console")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"

    # -- add a webhook endpoint (events go to the endpoints that exist when they happen)
    receiver = _Receiver()
    hooks = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    hook_port = hooks.sockets[0].getsockname()[1]
    await page.goto(f"{base}/console/webhooks")
    await page.fill("#add-endpoint input[name=url]", f"http://127.0.0.1:{hook_port}/hooks")
    await page.click("#add-endpoint button[type=submit]")
    assert (await page.text_content("#new-secret") or "").startswith("whsec_")
    await page.goto(f"{base}/console/live")

    # -- a real call appears on the live page without a reload, then ends by itself
    call = _start_call(served, engine, "first", tmp_path)
    row = await page.wait_for_selector("#live-calls tbody tr")
    assert row is not None
    call_id = await row.get_attribute("data-call-id")
    await _until_js(
        page, "document.querySelector('#live-calls tbody tr td:nth-child(7)').textContent !== '0'"
    )
    await _shot(page, "live", tmp_path)
    await page.wait_for_selector("#live-calls tbody tr", state="detached", timeout=60_000)
    report = await call
    assert report.call_id == call_id
    assert "nine" in report.reply_text.lower()  # the agent answered the question asked
    assert await page.is_visible("#live-empty")

    # -- a second call is hung up from the page
    second = _start_call(served, engine, "second", tmp_path)
    await page.wait_for_selector("#live-calls tbody tr button.hang-up")
    await page.click("#live-calls tbody tr button.hang-up")
    await page.wait_for_selector("#live-calls tbody tr", state="detached")
    assert (await second).ended_reason == "console_hangup"
    await served.writer.flush()

    # -- history lists both; the first one's detail plays its recording
    await page.goto(f"{base}/console/calls")
    assert await page.locator("#call-history tbody tr").count() == 2
    await _shot(page, "history", tmp_path)
    await page.click(f"a[href='/console/calls/{call_id}']")
    await page.wait_for_selector("#transcript li.turn.agent")
    assert await page.locator("#timeline tbody tr").count() > 5
    assert await page.locator("svg.chart rect.bar").count() >= 1
    duration_s = await _until_js(
        page,
        "(() => { const a = document.getElementById('recording');"
        " return a.readyState >= 1 && a.duration > 0 ? a.duration : false; })()",
    )
    assert abs(duration_s - report.duration_s) < 0.5
    await page.evaluate("document.getElementById('recording').play()")
    await _until_js(page, "document.getElementById('recording').currentTime > 0.3")
    await page.evaluate("document.getElementById('recording').pause()")
    await _shot(page, "call-detail", tmp_path)

    # -- edit an agent: the new greeting is validated and stored
    await page.goto(f"{base}/console/agents")
    await page.click("a[href='/console/agents/agt_front']")
    text = await page.input_value("#definition")
    edited = re.sub(r"(?m)^greeting: .*$", "greeting: Hello from the console test.", text)
    assert edited != text
    await page.fill("#definition", edited)
    await page.click("button[type=submit]")
    await page.wait_for_selector(".notice")
    assert "greeting: Hello from the console test." in await page.input_value("#definition")
    await _shot(page, "agents", tmp_path)  # the editor after a save says more than the list

    # -- the endpoint added before the calls gets their events; resend one
    try:
        for _ in range(100):
            await page.goto(f"{base}/console/webhooks?status=succeeded")
            if await page.locator("#deliveries tr[data-delivery-id]").count() >= 2:
                break
            await asyncio.sleep(0.2)
        await page.goto(f"{base}/console/webhooks")
        await _shot(page, "webhooks", tmp_path)
        delivered = len(receiver.ids)
        assert delivered >= 2  # call.started and call.ended of each call, turn.completed ...
        first = page.locator("#deliveries tr[data-delivery-id]").first
        await first.locator("button.resend").click()
        await page.wait_for_selector("#resent")
        for _ in range(100):
            if len(receiver.ids) > delivered:
                break
            await asyncio.sleep(0.1)
        assert len(receiver.ids) == delivered + 1
        assert receiver.ids[-1] in receiver.ids[:-1]  # the same message again, same webhook-id
    finally:
        hooks.close()
        await hooks.wait_closed()

    # -- the metrics overview counts both calls
    await page.goto(f"{base}/console/metrics")
    assert (await page.locator("#metrics .stat .value").first.text_content() or "").strip() == "2"
    await _shot(page, "metrics", tmp_path)
    await context.close()
