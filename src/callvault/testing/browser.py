"""A served vault and a real Chromium for tests of the web UI.

::

    with served_vault(tmp_path) as served, chromium() as browser:
        nurse = served.person("nurse.a", role="call_handler", care_units=["unit-a"])
        call = served.add_call("unit-a", agent="nurse.a", caller="070-123 45 67")
        tab = open_tab(browser, served)
        sign_in(tab.page, served, nurse)
        tab.page.goto(served.url(f"/recordings/{call}"))
        save_screenshot(tab.page, "recording")          # test-artifacts/screenshots/
        assert tab.csp_violations == []

The vault runs in process on a :class:`~callvault.testing.clock.FakeClock`
(advance it to expire sessions) behind the real uvicorn server over TLS with
a self-signed certificate, which the browser context is told to accept.
Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import uvicorn
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from callvault.adapters.audio import analyse
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.adapters.tls import ensure_self_signed, server_context
from callvault.core.access import Principal, Role
from callvault.entrypoints.http.app import create_app
from callvault.entrypoints.http.serve import BindAddress, server_config
from callvault.entrypoints.web import WebSettings, configure
from callvault.services import accounts, ingest
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.testing.audio import make_tone_wav
from callvault.testing.clock import FakeClock
from callvault.testing.http import (
    TEST_PASSWORD,
    TestAccount,
    cheap_password_hashing,
    enrolled_account,
    ensure_care_units,
)

CHROMIUM = Path("/usr/bin/chromium")
OPERATOR = Principal("tester", Role.OPERATOR)
VIEWPORT: ViewportSize = {"width": 1366, "height": 768}


def artifacts_dir() -> Path:
    """``test-artifacts/`` under the working directory (the repository in ``make test``)."""
    return Path(os.environ.get("CALLVAULT_TEST_ARTIFACTS", "test-artifacts")).resolve()


# --- the served vault -----------------------------------------------------------------


@dataclass
class ServedVault:
    vault: Vault
    clock: FakeClock
    app: object
    base_url: str
    tmp: Path

    def url(self, path: str) -> str:
        return self.base_url + path

    def person(
        self, username: str, *, role: str, care_units: list[str] | None = None
    ) -> TestAccount:
        """An enrolled account, made through the services (cheap password hashing)."""
        with cheap_password_hashing():
            return enrolled_account(self.vault, username, role=role, care_units=care_units or [])

    def enrolment_link(self, username: str, *, role: str, care_units: list[str]) -> str:
        """A new account's one-time link, as its administrator hands it out."""
        ensure_care_units(self.vault, care_units)
        made = accounts.create_user(self.vault, OPERATOR, username, role, care_units)
        return made.link(self.base_url)

    def add_call(
        self,
        care_unit: str,
        *,
        agent: str | None = None,
        caller: str | None = None,
        personnummer: str | None = None,
        seconds: float = 8.0,
        started_at: dt.datetime | None = None,
    ) -> uuid.UUID:
        """Ingest a synthetic call (a tone) as the operator; returns its id."""
        ensure_care_units(self.vault, [care_unit])
        audio = self.tmp / f"call-{uuid.uuid4().hex}.wav"
        make_tone_wav(audio, seconds)
        details = CallDetails.parse(
            care_unit=care_unit,
            started_at=started_at or self.clock.now() - dt.timedelta(hours=1),
            today=self.clock.now().date(),
            caller=caller,
            personnummer=personnummer,
            agent=agent,
            call_id=f"web-{uuid.uuid4().hex[:12]}",
        )
        try:
            return ingest.ingest(self.vault, OPERATOR, audio, details).recording_id
        finally:
            audio.unlink(missing_ok=True)

    def web_settings(self, settings: WebSettings) -> None:
        """Change the pages' idle timer (pages rendered from now on)."""
        configure(self.app, settings)  # type: ignore[arg-type]


def open_test_vault(tmp: Path, clock: FakeClock) -> Vault:
    """An initialised embedded vault in ``tmp`` on ``clock`` (cheap key derivation)."""
    for sub in ("keys", "data"):
        (tmp / sub).mkdir(mode=0o700, exist_ok=True)
    keys = KeyfileProvider.create(
        tmp / "keys" / "k", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
    )
    vault = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{tmp / 'data' / 'vault.db'}"),
        blobs=open_blobstore((tmp / "blobs").as_uri()),
        keys=keys,
        clock=clock,
        probe=analyse,
        origin=vault_service.origin_for(str(uuid.uuid4())),
        max_ingest_bytes=16 * 1024 * 1024,
    )
    vault_service.initialise(vault, OPERATOR)
    return vault


@contextmanager
def served_vault(tmp: Path, now: dt.datetime | None = None) -> Iterator[ServedVault]:
    """A fresh vault served over HTTPS on a free loopback port until the block ends."""
    clock = FakeClock(now or dt.datetime.now(dt.UTC).replace(microsecond=0))
    vault = open_test_vault(tmp, clock)
    app = create_app(vault)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    address = BindAddress(socket.AF_INET, sock.getsockname())
    context = server_context(ensure_self_signed(tmp / "tls"))
    config = server_config(app, context, address)
    config.log_config = None  # leave the test run's logging alone
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web test server did not start")
        time.sleep(0.02)
    try:
        yield ServedVault(vault, clock, app, f"https://127.0.0.1:{address.port}", tmp)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        vault.close()


# --- the browser ----------------------------------------------------------------------


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless; fails loudly if it is not installed."""
    if not CHROMIUM.is_file():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (make system-deps)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """A page in its own browser context (own cookies) and what its console said."""

    page: Page
    console_errors: list[str] = field(default_factory=list)

    @property
    def csp_violations(self) -> list[str]:
        return [m for m in self.console_errors if "Content Security Policy" in m]

    def close(self) -> None:
        self.page.context.close()


def open_tab(browser: Browser, served: ServedVault, locale: str = "sv-SE") -> Tab:
    context = browser.new_context(
        ignore_https_errors=True, viewport=VIEWPORT, locale=locale, base_url=served.base_url
    )
    page = context.new_page()
    tab = Tab(page)
    page.on("console", lambda m: tab.console_errors.append(m.text) if m.type == "error" else None)
    return tab


def sign_in(page: Page, served: ServedVault, account: TestAccount) -> None:
    """Sign in through the pages: password, then a TOTP code at the vault's clock."""
    page.goto(served.url("/signin"))
    page.fill("#username", account.username)
    page.fill("#password", account.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/signin/code")
    page.fill("#code", account.code(served.clock.now()))
    page.click("form[action='/signin/code'] button[type=submit]")
    page.wait_for_load_state()
    if "/signin" in page.url:
        raise AssertionError(f"sign-in of {account.username} failed: {page.inner_text('main')}")


def enrol(
    page: Page, served: ServedVault, username: str, link: str, password: str = TEST_PASSWORD
) -> TestAccount:
    """Open an enrolment link, scan (read) the QR page's key, set the password, confirm.

    Returns the account with its recovery codes as the last page showed them.
    """
    page.goto(link)
    page.wait_for_selector("#otp-uri", state="attached")
    uri = page.text_content("#otp-uri") or ""
    secret = parse_qs(urlparse(uri).query)["secret"][0]
    account = TestAccount(username, "", (), password, secret, [])
    page.fill("#password", password)
    page.fill("#password_again", password)
    page.fill("#code", account.code(served.clock.now()))
    page.click("#enrol-finish button[type=submit]")
    page.wait_for_selector("#recovery-codes")
    account.recovery_codes = [
        c.strip() for c in page.locator("#recovery-codes code").all_inner_texts()
    ]
    return account


# --- screenshots ----------------------------------------------------------------------


def save_screenshot(page: Page, name: str) -> Path:
    """A full-page PNG under ``test-artifacts/screenshots/``; fails if it is blank."""
    folder = artifacts_dir() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert_not_blank(path)
    return path


def assert_not_blank(path: Path, minimum_variance: float = 50.0) -> None:
    """A rendered page has text and edges: its grey levels vary; a blank one's do not."""
    from PIL import Image, ImageStat  # Pillow comes with fpdf2

    with Image.open(path) as image:
        variance = ImageStat.Stat(image.convert("L")).var[0]
    if variance < minimum_variance:
        raise AssertionError(f"{path.name} looks blank (grey-level variance {variance:.1f})")


def wait_until(page: Page, expression: str, timeout: float = 10.0) -> object:
    """Poll a JavaScript expression until it is truthy.

    ``page.wait_for_function`` evaluates strings with ``eval`` inside the
    page, which the pages' policy (no 'unsafe-eval') rightly refuses.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {expression}")
        time.sleep(0.1)
