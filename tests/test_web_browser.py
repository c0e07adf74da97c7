"""The web UI in a real browser (Debian's Chromium via Playwright) against the real
server over TLS (R1, R7-R10, R13).

One served vault and one browser for the module; each test opens its own
browser context (own cookies).  Every page is screenshotted under
``test-artifacts/screenshots/`` and must not be blank, and no page may trip the
Content-Security-Policy.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Response

from callvault.entrypoints.web import WebSettings
from callvault.testing.browser import (
    ServedVault,
    Tab,
    chromium,
    enrol,
    open_tab,
    save_screenshot,
    served_vault,
    sign_in,
    wait_until,
)
from callvault.testing.http import TestAccount

PHONE_TYPED = "070-123 45 67"
PHONE_DIGITS = "701234567"
PNR = "19121212-1212"


@dataclass
class World:
    served: ServedVault
    browser: Browser
    people: dict[str, TestAccount]
    call: uuid.UUID  # unit-a, taken by nurse.a, from PHONE_TYPED


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with served_vault(tmp_path_factory.mktemp("web")) as served, chromium() as browser:
        people = {
            "nurse.b": served.person("nurse.b", role="call_handler", care_units=["unit-b"]),
            "admin.x": served.person("admin.x", role="administrator"),
            "nurse.idle": served.person("nurse.idle", role="call_handler", care_units=["unit-a"]),
        }
        call = served.add_call(
            "unit-a", agent="nurse.a", caller=PHONE_TYPED, personnummer=PNR, seconds=20
        )
        served.add_call("unit-a", agent="someone.else", caller="08-123 456 78")
        yield World(served, browser, people, call)


@pytest.fixture
def tab(world: World) -> Iterator[Tab]:
    opened = open_tab(world.browser, world.served)
    yield opened
    violations = opened.csp_violations
    opened.close()
    assert violations == [], violations


def fresh_step(world: World) -> None:
    """Each sign-in needs an unused TOTP step of its account; move the vault clock on."""
    world.served.clock.advance(seconds=30)


# --- enrolment and sign-in ---------------------------------------------------------------


def test_first_sign_in_enrols_totp_shows_recovery_codes_once_then_signs_in(world, tab):
    """R7: the enrolment link sets password and TOTP; ten recovery codes are shown once."""
    page = tab.page
    link = world.served.enrolment_link("nurse.a", role="call_handler", care_units=["unit-a"])
    page.goto(link)
    page.wait_for_selector("figure.qr svg")
    assert "#" not in page.url and "token" not in page.url  # the token left the address bar
    save_screenshot(page, "enrol-qr")
    account = enrol(page, world.served, "nurse.a", link)
    assert len(account.recovery_codes) == 10
    save_screenshot(page, "enrol-recovery-codes")
    world.people["nurse.a"] = account
    # The link is spent: opening it again says so.
    page.goto(link)
    page.wait_for_selector("p.error")
    fresh_step(world)
    sign_in(page, world.served, account)
    assert page.url.endswith("/search")
    assert page.locator("header nav a[aria-current=page]").inner_text() == "Sök samtal"
    save_screenshot(page, "search-empty")


def test_wrong_password_and_wrong_code_get_clear_messages(world, tab):
    page = tab.page
    page.goto(world.served.url("/signin"))
    save_screenshot(page, "signin")
    page.fill("#username", "nurse.b")
    page.fill("#password", "not the password at all")
    page.click("button[type=submit]")
    assert "Fel användarnamn eller lösenord" in page.inner_text("main")
    account = world.people["nurse.b"]
    page.fill("#username", account.username)
    page.fill("#password", account.password)
    page.click("button[type=submit]")
    page.wait_for_url("**/signin/code")
    save_screenshot(page, "signin-code")
    page.fill("#code", "000000")
    page.click("form[action='/signin/code'] button[type=submit]")
    assert "Koden stämmer inte" in page.inner_text("main")


# --- search, play, seek --------------------------------------------------------------------


def signed_in(world: World, tab: Tab, name: str) -> None:
    fresh_step(world)
    sign_in(tab.page, world.served, world.people[name])


def test_search_by_a_phone_number_typed_with_dashes_and_spaces_finds_the_call(world, tab):
    """R3: identifiers go in the POST body; the URL never carries them."""
    if "nurse.a" not in world.people:
        pytest.fail("runs after the enrolment test, which makes nurse.a")
    signed_in(world, tab, "nurse.a")
    page = tab.page
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.fill("#who", PHONE_TYPED)
    page.click("#search-button")
    page.wait_for_selector("table.results tbody tr")
    rows = page.locator("table.results tbody tr")
    assert rows.count() == 1  # the other unit-a call is someone else's
    assert page.locator(f"a[href='/recordings/{world.call}']").count() == 1
    assert not any(PHONE_DIGITS in u or "070" in u for u in requested)
    save_screenshot(page, "search-results")
    # Sorting by a column keeps the result and marks the column.
    page.click("button.sort >> text=Längd")
    # The time column is marked before the click: wait for the one clicked.
    page.locator("th[aria-sort]", has_text="Längd").wait_for()
    assert page.locator("th[aria-sort]").count() == 1


def test_play_needs_a_reason_then_seeks_to_the_middle_with_range_requests(world, tab):
    """R9: a reason opens the grant; the player reads ranges (206) and seeks anywhere."""
    signed_in(world, tab, "nurse.a")
    page = tab.page
    audio_answers: list[Response] = []
    page.on("response", lambda r: audio_answers.append(r) if r.url.endswith("/audio") else None)
    page.goto(world.served.url(f"/recordings/{world.call}"))
    page.wait_for_selector("#waveform[data-ready='1']")
    assert page.locator("#player-box").is_hidden()
    assert "070-123 45 67" in page.inner_text("dl") or "+46701234567" in page.inner_text("dl")
    # No reason, no play: the form asks for one.
    page.click("#play-button")
    assert page.locator("#player-box").is_hidden()
    page.select_option("#reason_code", "callback")
    page.click("#play-button")
    page.wait_for_selector("#player-box:not([hidden])")
    wait_until(page, "document.getElementById('player').duration > 0")
    duration = page.evaluate("document.getElementById('player').duration")
    assert 19 < duration < 21
    page.evaluate("document.getElementById('player').pause()")
    page.evaluate(f"document.getElementById('player').currentTime = {duration / 2}")
    page.evaluate("document.getElementById('player').play()")
    wait_until(page, f"document.getElementById('player').currentTime > {duration / 2 + 0.3}")
    assert any(r.status == 206 for r in audio_answers), [r.status for r in audio_answers]
    assert all(r.status in (200, 206) for r in audio_answers)
    save_screenshot(page, "recording-playing")


# --- people who must get nothing ---------------------------------------------------------------


def test_a_user_of_another_care_unit_finds_nothing_and_gets_no_audio_by_url(world, tab):
    """R8: nurse.b (unit-b) gets an empty result, a not-found page and no audio."""
    signed_in(world, tab, "nurse.b")
    page = tab.page
    page.fill("#who", PHONE_TYPED)
    page.click("#search-button")
    page.wait_for_selector("#no-results")
    save_screenshot(page, "search-no-results")
    page.goto(world.served.url(f"/recordings/{world.call}"))
    assert "Det finns inget här" in page.inner_text("main")
    assert PHONE_DIGITS not in page.content()
    save_screenshot(page, "recording-not-found")
    audio = page.request.get(world.served.url(f"/api/v1/recordings/{world.call}/audio"))
    assert audio.status in (403, 404)
    assert not audio.body().startswith(b"RIFF")


def test_the_administrator_has_no_play_button_and_gets_403_on_the_audio_url(world, tab):
    signed_in(world, tab, "admin.x")
    page = tab.page
    assert page.url.endswith("/admin/users")  # an administrator's landing page
    page.goto(world.served.url(f"/recordings/{world.call}"))
    assert page.locator("#play-button").count() == 0
    assert page.locator("audio").count() == 0
    audio = page.request.get(world.served.url(f"/api/v1/recordings/{world.call}/audio"))
    assert audio.status == 403
    save_screenshot(page, "admin-recording")


# --- emergency access -----------------------------------------------------------------------


def test_emergency_access_shows_a_banner_with_its_expiry_and_reaches_the_call(world, tab):
    """R10: nurse.b breaks the glass for unit-a; a banner says until when."""
    signed_in(world, tab, "nurse.b")
    page = tab.page
    page.goto(world.served.url("/emergency"))
    page.fill("#reason", "Uppringaren ringde tillbaka efter råd från annan enhet")
    page.fill("#care_units", "unit-a")
    page.select_option("#minutes", "30")
    save_screenshot(page, "emergency-form")
    page.click("#emergency-form button[type=submit]")
    page.wait_for_selector("#emergency-banner")
    banner = page.inner_text("#emergency-banner")
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", banner), banner
    save_screenshot(page, "emergency-banner")
    page.goto(world.served.url(f"/recordings/{world.call}"))
    assert page.locator("#play-button").count() == 1


# --- idle timeout and languages ------------------------------------------------------------


def test_idle_timeout_warns_then_signs_out_and_the_server_agrees(world, tab):
    """R7: the page warns, then signs out; a session idle 15 minutes is refused anyway."""
    world.served.web_settings(WebSettings(idle_seconds=4, warn_seconds=3))
    try:
        signed_in(world, tab, "nurse.idle")
    finally:
        world.served.web_settings(WebSettings())
    page = tab.page
    page.wait_for_selector("#idle-warning:not([hidden])", timeout=5000)
    save_screenshot(page, "idle-warning")
    page.wait_for_url("**/signin?m=idle", timeout=8000)
    assert "utan aktivitet" in page.inner_text("main")
    # The server's own clock: a session left alone for 16 minutes is over.
    signed_in(world, tab, "nurse.idle")
    world.served.clock.advance(minutes=16)
    page.goto(world.served.url("/search"))
    assert "/signin?m=expired" in page.url
    assert "har gått ut" in page.inner_text("main")


def test_pages_render_in_swedish_by_default_and_in_english_on_request(world, tab):
    page = tab.page
    page.goto(world.served.url("/signin"))
    assert page.get_attribute("html", "lang") == "sv"
    assert page.inner_text("h1") == "Logga in"
    page.click("a[hreflang=en]")
    page.wait_for_selector("html[lang=en]")
    assert page.inner_text("h1") == "Sign in"
    save_screenshot(page, "signin-english")
    signed_in(world, tab, "nurse.b")
    assert page.inner_text("h1") == "Search calls"
    save_screenshot(page, "search-english")
    page.goto(world.served.url("/signin?lang=sv"))
    assert page.inner_text("h1") == "Logga in"
    time.sleep(0)  # nothing to wait for: the language is a cookie, not a session
