"""Log review and administration pages in a real browser (Debian's Chromium via
Playwright) against the real server over TLS (R7, R10, R11, R13, R14, R17).

One served vault and one browser for the module; each test opens its own
browser context.  Every new page is screenshotted under
``test-artifacts/screenshots/`` and must not be blank, and no page may trip
the Content-Security-Policy.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, Page

from callvault.core.access import Principal, Role
from callvault.entrypoints.web.i18n import LOCAL_TIME
from callvault.services import emergency
from callvault.testing.browser import (
    ServedVault,
    Tab,
    chromium,
    enrol,
    open_tab,
    save_screenshot,
    served_vault,
    sign_in,
)
from callvault.testing.http import TestAccount

PLAY_REASON = "Uppföljning av rådet efter kontakt"


@dataclass
class World:
    served: ServedVault
    browser: Browser
    people: dict[str, TestAccount]
    call: uuid.UUID  # unit-a, taken by nurse.a


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with served_vault(tmp_path_factory.mktemp("webadmin")) as served, chromium() as browser:
        people = {
            "nurse.a": served.person("nurse.a", role="call_handler", care_units=["unit-a"]),
            "rev.x": served.person("rev.x", role="log_reviewer"),
            "admin.x": served.person("admin.x", role="administrator"),
        }
        call = served.add_call("unit-a", agent="nurse.a", caller="070-123 45 67", seconds=6)
        yield World(served, browser, people, call)


@pytest.fixture
def tab(world: World) -> Iterator[Tab]:
    opened = open_tab(world.browser, world.served)
    yield opened
    violations = opened.csp_violations
    opened.close()
    assert violations == [], violations


def signed_in(world: World, tab: Tab, name: str) -> Page:
    world.served.clock.advance(seconds=30)  # an unused TOTP step for every sign-in
    sign_in(tab.page, world.served, world.people[name])
    return tab.page


# --- log review -------------------------------------------------------------------------------


def test_the_log_reviewer_sees_the_nurses_play_with_its_reason(world, tab):
    """R13/R14: a play is one entry, with who, the call and the reason given."""
    nurse = open_tab(world.browser, world.served)
    try:
        page = signed_in(world, nurse, "nurse.a")
        page.goto(world.served.url(f"/recordings/{world.call}"))
        page.select_option("#reason_code", "other")
        page.fill("#reason", PLAY_REASON)
        page.click("#play-button")
        page.wait_for_selector("#player-box:not([hidden])")
    finally:
        nurse.close()
    page = signed_in(world, tab, "rev.x")
    assert page.url.endswith("/audit")  # the log reviewer's landing page
    page.select_option("#action", "recording:play")
    page.fill("#recording", str(world.call))
    page.click("#audit-button")
    page.wait_for_selector("#audit-entries tr[data-action='recording:play']")
    row = page.locator("#audit-entries tr[data-action='recording:play']")
    assert row.count() == 1
    text = row.inner_text()
    assert "nurse.a" in text and PLAY_REASON in text and "utfört" in text
    assert page.locator("#audit-entries tbody tr").count() == 1  # the filter held
    assert page.url.removeprefix(world.served.base_url) == "/audit"  # filters stay out of it
    save_screenshot(page, "audit-log")
    # Dates are whole days in Swedish time, as the pages show times.
    today = world.served.clock.now().astimezone(LOCAL_TIME).date()
    page.fill("#date_from", str(today - dt.timedelta(days=3)))
    page.fill("#date_to", str(today - dt.timedelta(days=1)))
    page.click("#audit-button")
    page.wait_for_selector("#no-entries")
    page.fill("#date_from", str(today))
    page.fill("#date_to", str(today))
    page.click("#audit-button")
    page.wait_for_selector("#audit-entries tr[data-action='recording:play']")


def test_verify_now_shows_that_the_chain_is_intact(world, tab):
    """R14: recompute the chain and the signed checkpoints on request."""
    page = signed_in(world, tab, "rev.x")
    page.goto(world.served.url("/audit/verify?lang=en"))
    assert page.locator("#chain-status").count() == 0
    page.click("#verify-now")
    page.wait_for_selector("#chain-status")
    assert page.get_attribute("#chain-status", "data-ok") == "true"
    assert "The log is intact." in page.inner_text("#chain-status")
    assert int(page.inner_text("#chain-checkpoints").replace(",", "")) >= 1
    save_screenshot(page, "audit-verify")


def test_resolving_an_emergency_access_records_the_outcome_and_comment(world, tab):
    """R10/R17: an emergency access queues an item; the reviewer records an outcome."""
    nurse = Principal("nurse.a", Role.CALL_HANDLER, "unit-a", session="s-browser")
    emergency.open_emergency(
        world.served.vault, nurse, "Uppringaren har ringt annan enhet", ["unit-b"],
        dt.timedelta(minutes=30),
    )  # fmt: skip
    page = signed_in(world, tab, "rev.x")
    page.goto(world.served.url("/review"))
    row = page.locator("#review-items tr.open", has_text="Nödåtkomst öppnad")
    assert row.count() == 1 and "nurse.a" in row.inner_text()
    save_screenshot(page, "review-queue")
    item = row.get_attribute("id")
    # The item's log entry, with the reason typed when the access was opened.
    page.click(f"#{item} a[href^='/audit?from=']")
    first = page.locator("#audit-entries tbody tr").first
    assert first.get_attribute("data-action") == "access:emergency"
    assert "Uppringaren har ringt annan enhet" in first.inner_text()
    page.goto(world.served.url("/review"))
    page.select_option(f"#{item} select", "follow_up")
    page.fill(f"#{item} input[name=comment]", "Samtal med enhetschefen bokat")
    page.click(f"#{item} button[type=submit]")
    page.wait_for_selector("p.notice")
    assert page.locator(f"#{item}").count() == 0  # no longer open
    page.goto(world.served.url("/review?all=1"))
    done = page.locator(f"#{item}")
    assert "Följ upp" in done.inner_text() and "Samtal med enhetschefen bokat" in done.inner_text()
    assert "rev.x" in done.inner_text()
    save_screenshot(page, "review-resolved")


# --- administration --------------------------------------------------------------------------


def test_the_administrator_creates_a_user_whose_link_enrols_then_resets_the_second_factor(
    world, tab
):
    """R7: the one-time link is shown once; a reset gives a new one and ends the old factor."""
    page = signed_in(world, tab, "admin.x")
    assert page.url.endswith("/admin/users")  # the administrator's landing page
    page.fill("#username", "nurse.new")
    page.select_option("#role", "call_handler")
    page.fill("#care_units", "unit-a")
    page.click("#create-user")
    page.wait_for_selector("#enrolment-link")
    link = page.input_value("#enrolment-link")
    assert link.startswith(world.served.base_url + "/enrol#")
    assert page.locator("#users tr[data-username='nurse.new']").count() == 1
    save_screenshot(page, "admin-user-created")
    # The link works, once, in the new person's own browser.
    newcomer = open_tab(world.browser, world.served)
    try:
        enrol(newcomer.page, world.served, "nurse.new", link)
    finally:
        newcomer.close()
    page.goto(world.served.url("/admin/users"))
    row = page.locator("#users tr[data-username='nurse.new']")
    assert "aktiv" in row.inner_text()
    row.locator("summary").click()
    row.locator(".reset-form button").click()
    page.wait_for_selector("#enrolment-link")
    again = page.input_value("#enrolment-link")
    assert again.startswith(world.served.base_url + "/enrol#") and again != link
    assert (
        "väntar på aktivering" in page.locator("#users tr[data-username='nurse.new']").inner_text()
    )
    save_screenshot(page, "admin-user-reset")


def test_the_administrator_creates_a_token_shown_once_and_revokes_it(world, tab):
    """R11: the secret is shown once and works; once revoked it opens nothing."""
    page = signed_in(world, tab, "admin.x")
    page.goto(world.served.url("/admin/tokens"))
    page.fill("#token-name", "recorder-a")
    page.fill("#token-unit", "unit-a")
    page.click("#create-token")
    page.wait_for_selector("#token-value")
    secret = page.input_value("#token-value")
    assert secret.startswith("cvt_")
    save_screenshot(page, "admin-token-created")
    bearer = {"Authorization": f"Bearer {secret}"}
    # The recorder's own request: no browser cookies beside the token.
    with httpx.Client(base_url=world.served.base_url, verify=False) as recorder:
        assert recorder.get("/api/v1/auth/me", headers=bearer).status_code == 200
    page.goto(world.served.url("/admin/tokens"))
    assert secret not in page.content()  # listed without its secret
    row = page.locator("#tokens tr[data-token='recorder-a']")
    row.locator("summary").click()
    row.locator(".revoke-form button").click()
    page.wait_for_selector("#admin-notice")
    assert "återkallad" in page.locator("#tokens tr[data-token='recorder-a']").inner_text()
    with httpx.Client(base_url=world.served.base_url, verify=False) as recorder:
        assert recorder.get("/api/v1/auth/me", headers=bearer).status_code == 401
    save_screenshot(page, "admin-token-revoked")


def test_the_other_administration_pages_render_in_both_languages(world, tab):
    page = signed_in(world, tab, "admin.x")
    for path, marker, name in (
        ("/admin/units", "#units", "admin-units"),
        ("/admin/policies", "#policies", "admin-policies"),
        ("/admin/keys", "#key-facts", "admin-keys"),
        ("/admin/jobs", "h1", "admin-jobs"),
    ):
        page.goto(world.served.url(path))
        assert page.locator(marker).count() == 1, path
        assert page.locator("#play-button, audio").count() == 0
        save_screenshot(page, name)
        page.goto(world.served.url(f"{path}?lang=en"))
        assert page.locator("html").get_attribute("lang") == "en"
        assert "{" not in page.inner_text("main"), path  # every text filled in
    page.goto(world.served.url("/admin/keys?lang=sv"))
    assert int(page.inner_text("#key-recordings")) >= 1
