"""Browser tests: real headless Chromium (Debian's `chromium`, driven by Playwright for Python)
against a real `fastnpc serve --fake-llm` subprocess on port 0 with a fresh SQLite database.

`.ci/run` installs `/usr/bin/chromium` when it is missing; elsewhere these tests are skipped
without it (and fail under CI=true). Screenshots go to `tests/artifacts/web/` (ignored by git).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.cliproc import READY, ROOT, cli_env

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts" / "web"
ADMIN = ("root", "a long admin password")
PASSWORD = "correct horse battery"

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright  # noqa: E402


@dataclass
class Server:
    """A running `fastnpc serve --fake-llm` and an HTTP client for setting things up."""

    base_url: str
    http: httpx.Client

    def register(self, username: str) -> str:
        """A new user through the API; their token."""
        r = self.http.post("/api/auth/register", json={"username": username, "password": PASSWORD})
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def call(self, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(
            method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )


def _wait_ready(process: subprocess.Popen[bytes], deadline: float) -> str:
    """Read the merged output until the "serving on" line; the base URL it names."""
    assert process.stdout is not None
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            seen += chunk
            for line in seen.decode(errors="replace").splitlines():
                if line.startswith(READY):
                    return line.removeprefix(READY).split(",")[0].split(" with ")[0].strip()
    raise AssertionError(f"fastnpc serve did not start: {seen.decode(errors='replace')}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("web") / "fastnpc.db"
    env = cli_env(
        db,
        FASTNPC_ADMIN_USERNAME=ADMIN[0],
        FASTNPC_ADMIN_PASSWORD=ADMIN[1],
        FASTNPC_MEMORY_KEEP_RECENT="2",  # "Compress now" has something to do after two turns
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", "0", "--fake-llm"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base_url = _wait_ready(process, time.monotonic() + 120)
        with httpx.Client(base_url=base_url, timeout=60) as http:
            yield Server(base_url, http)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
        else:
            process.communicate()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Tab:
    """One page in its own browser context, with the console errors it logged."""

    page: Page
    server: Server
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def open(self, route: str = "") -> None:
        self.page.goto(f"{self.server.base_url}/{route}")

    def shot(self, name: str, *, full_page: bool = False) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def log_in(self, username: str, password: str = PASSWORD) -> None:
        self.open("#/login")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in", exact=True).click()
        self.page.get_by_role("button", name="Log out").wait_for()

    def assert_fits(self) -> None:
        """Nothing sticks out sideways (no horizontal scrolling at this width)."""
        width = self.page.evaluate("document.documentElement.scrollWidth")
        viewport = self.page.viewport_size
        assert viewport is not None and width <= viewport["width"], (width, viewport)


@pytest.fixture
def tab(browser: Browser, server: Server) -> Iterator[Tab]:
    # bypass_csp: the page's CSP would also stop injected script; the tests show that text is
    # never parsed as HTML at all (and Playwright's wait_for_function needs eval).
    context = browser.new_context(viewport={"width": 1440, "height": 900}, bypass_csp=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    result = Tab(page, server)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            result.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: result.errors.append(f"uncaught: {error}"))

    def on_dialog(dialog: Any) -> None:
        result.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        yield result
        assert result.errors == [], result.errors
    finally:
        context.close()
