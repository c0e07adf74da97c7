"""The privacy officer's pages in a real browser (Debian's Chromium via Playwright)
against the real server over TLS (R18-R22).

One served vault and one browser for the module; each test opens its own
browser context.  Every page is screenshotted under
``test-artifacts/screenshots/`` and must not be blank, and no page may trip
the Content-Security-Policy.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from callvault.core import agefile
from callvault.core.access import Principal, Role
from callvault.core.audit import Action
from callvault.core.extract_verify import verify_extract
from callvault.services import audit, audit_view
from callvault.testing.browser import (
    ServedVault,
    Tab,
    chromium,
    open_tab,
    save_screenshot,
    served_vault,
    sign_in,
)
from callvault.testing.http import TestAccount

CALLER = "070-123 45 67"
PLAY_REASON = "Uppföljning av rådet efter kontakt"
HOLD_REFERENCE = "DNR 2026/114"
PRIVACY_PAGES = (
    "/privacy",
    "/privacy/extract",
    "/privacy/export",
    "/privacy/erasure",
    "/privacy/holds",
    "/privacy/breach",
    "/privacy/review-report",
    "/privacy/policies",
)


@dataclass
class World:
    served: ServedVault
    browser: Browser
    people: dict[str, TestAccount]
    played: uuid.UUID  # unit-a, taken by nurse.a, played by her in the first test
    other: uuid.UUID  # the same caller's second call


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with served_vault(tmp_path_factory.mktemp("webprivacy")) as served, chromium() as browser:
        people = {
            "nurse.a": served.person("nurse.a", role="call_handler", care_units=["unit-a"]),
            "dpo.x": served.person("dpo.x", role="privacy_officer"),
        }
        played = served.add_call("unit-a", agent="nurse.a", caller=CALLER, seconds=4)
        other = served.add_call("unit-a", agent="nurse.a", caller="+46 70 123 45 67", seconds=3)
        yield World(served, browser, people, played, other)


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


def fill_caller(page: Page) -> None:
    page.fill("#caller", CALLER)


def test_the_officer_sees_the_nurses_play_in_the_log_extract_and_downloads_it(world, tab):
    """R18: the extract lists the play; the PDF is a PDF; the JSON verifies offline
    against the vault's public key; the caller's number is in no address."""
    nurse = open_tab(world.browser, world.served)
    try:
        page = signed_in(world, nurse, "nurse.a")
        page.goto(world.served.url(f"/recordings/{world.played}"))
        page.select_option("#reason_code", "other")
        page.fill("#reason", PLAY_REASON)
        page.click("#play-button")
        page.wait_for_selector("#player-box:not([hidden])")
    finally:
        nurse.close()
    page = signed_in(world, tab, "dpo.x")
    page.click("nav a[href='/privacy']")
    page.wait_for_selector("#privacy-pages")
    save_screenshot(page, "privacy-home")
    page.click("#privacy-pages a[href='/privacy/extract']")
    fill_caller(page)
    page.check("#with_users")
    page.click("#extract-show")
    page.wait_for_selector("#extract-entries tr[data-how='play']")
    row = page.locator("#extract-entries tr[data-how='play']")
    assert row.count() == 1
    assert "uppspelad" in row.inner_text() and "nurse.a" in row.inner_text()
    assert page.input_value("#caller") == CALLER  # the form stays for the downloads
    save_screenshot(page, "privacy-extract")
    with page.expect_download() as pdf_download:
        page.click("#extract-pdf")
    pdf = pdf_download.value
    assert re.fullmatch(r"loggutdrag-\d{8}-\d{6}\.pdf", pdf.suggested_filename)
    assert Path(pdf.path()).read_bytes().startswith(b"%PDF")
    with page.expect_download() as json_download:
        page.click("#extract-json")
    data = Path(json_download.value.path()).read_bytes()
    report = verify_extract(data, audit.verifier_key(world.served.vault))
    assert report is not None
    document = json.loads(data)
    assert any(e["how"] == "play" for e in document["entries"])
    assert "1234567" not in data.decode().replace(" ", "")
    assert "123" not in page.url and tab.page.url.endswith("/privacy/extract")


def test_an_access_export_shows_its_passphrase_once_and_the_saved_file_opens_with_it(world, tab):
    """R21 (Art. 15): the page's script gets the age file as the POST's answer, shows
    the passphrase once and saves the file; the file opens with that passphrase and
    nothing of it is left on the server to fetch again."""
    page = signed_in(world, tab, "dpo.x")
    page.goto(world.served.url("/privacy/export"))
    assert page.locator("#export-ready").is_hidden()
    fill_caller(page)
    with page.expect_download() as download:
        page.click("#export-make")
    page.wait_for_selector("#export-ready")
    passphrase = page.input_value("#export-passphrase")
    assert re.fullmatch(r"([a-z2-9]{5}-){4}[a-z2-9]{5}", passphrase)
    assert "2 inspelningar" in page.inner_text("#export-heading")  # both of the caller's calls
    save_screenshot(page, "privacy-export")
    saved = download.value
    assert re.fullmatch(r"registerutdrag-\d{8}-\d{6}\.zip\.age", saved.suggested_filename)
    data = Path(saved.path()).read_bytes()
    assert data.startswith(b"age-encryption.org/v1\n")
    opened = zipfile.ZipFile(io.BytesIO(b"".join(agefile.decrypt(io.BytesIO(data), passphrase))))
    assert "manifest.json" in opened.namelist()
    assert sum(name.endswith(".wav") for name in opened.namelist()) == 2
    # Saved again from the page's memory (no new request): the same file.
    with page.expect_download() as again:
        page.click("#export-download")
    assert Path(again.value.path()).read_bytes() == data
    assert "123" not in page.url and page.url.endswith("/privacy/export")
    page.goto(world.served.url("/privacy/export"))
    assert page.locator("#export-ready").is_hidden()
    assert passphrase not in page.content()
    # A caller the vault does not know: the refusal is shown, nothing is saved.
    page.fill("#caller", "070-765 43 21")
    page.click("#export-make")
    page.wait_for_selector("#export-error p.error")
    assert page.locator("#export-ready").is_hidden() and "765" not in page.url


def test_without_javascript_the_export_form_says_so_and_hands_out_no_file(world):
    """A file whose passphrase nobody saw is never handed out: without the page's
    script the form answers the page with a message, and no copy is made."""
    context = world.browser.new_context(
        ignore_https_errors=True, java_script_enabled=False, base_url=world.served.base_url
    )
    try:
        page = context.new_page()
        world.served.clock.advance(seconds=30)
        sign_in(page, world.served, world.people["dpo.x"])
        before = len(exports_logged(world))
        page.goto(world.served.url("/privacy/export"))
        fill_caller(page)
        page.click("#export-make")
        page.wait_for_selector("#export-error p.error")
        assert "JavaScript" in page.inner_text("#export-error")
        assert page.locator("#export-ready").is_hidden()
        assert len(exports_logged(world)) == before
    finally:
        context.close()


def exports_logged(world: World) -> list[object]:
    query = audit_view.AuditQuery(action=str(Action.SUBJECT_EXPORT), limit=100)
    reader = Principal("tester", Role.OPERATOR)
    return list(audit_view.list_entries(world.served.vault, reader, query).entries)


def test_a_legal_hold_keeps_a_recording_out_of_an_erasure_until_released(world, tab):
    """R20/R21: set a hold, preview the erasure (held: not erasable, and why), release."""
    page = signed_in(world, tab, "dpo.x")
    page.goto(world.served.url("/privacy/holds"))
    page.fill("#recording_id", str(world.other))
    page.fill("#reference", HOLD_REFERENCE)
    page.click("#hold-set")
    page.wait_for_selector("#hold-notice")
    assert HOLD_REFERENCE in page.inner_text("#hold-notice")
    save_screenshot(page, "privacy-holds")
    page.goto(world.served.url("/privacy/erasure"))
    fill_caller(page)
    page.fill("#reason", "Begäran enligt art. 17")
    page.click("#erasure-preview")
    page.wait_for_selector("#erasure-report[data-dry-run='yes']")
    held = page.locator(f"#erasure-items tr[data-recording='{world.other}']")
    assert held.get_attribute("data-verdict") == "legal_hold"
    assert HOLD_REFERENCE in held.inner_text() and "behålls" in held.inner_text()
    assert page.locator("#erasure-items tbody tr").count() == 2
    save_screenshot(page, "privacy-erasure")
    page.goto(world.served.url("/privacy/holds"))
    page.fill("#recording_id", str(world.other))
    page.fill("#reference", HOLD_REFERENCE)
    page.click("#hold-release")
    page.wait_for_selector("#hold-notice")
    assert "hävd" in page.inner_text("#hold-notice")
    # A second release is refused, clearly, and keeps what was typed.
    page.fill("#recording_id", str(world.other))
    page.fill("#reference", HOLD_REFERENCE)
    page.click("#hold-release")
    page.wait_for_selector("p.error")
    assert page.input_value("#recording_id") == str(world.other)


def test_a_breach_report_for_a_user_lists_what_they_reached(world, tab):
    """R22: the recordings a user reached, and how many callers they concern."""
    page = signed_in(world, tab, "dpo.x")
    page.goto(world.served.url("/privacy/breach"))
    page.fill("#actor", "nurse.a")
    page.click("#breach-run")
    page.wait_for_selector("#breach-report")
    assert int(page.inner_text("#breach-recordings")) >= 1
    assert int(page.inner_text("#breach-callers")) == 1
    items = page.inner_text("#breach-items")
    assert str(world.played) in items and "uppspelad × 1" in items
    assert "4670" not in items.replace(" ", "")  # numbers only when asked for
    save_screenshot(page, "privacy-breach")
    page.check("#show_callers")
    page.click("#breach-run")
    page.wait_for_selector("#breach-report")
    assert "46701234567" in page.inner_text("#breach-items").replace(" ", "")
    page.goto(world.served.url("/privacy/review-report"))
    page.click("#report-run")
    page.wait_for_selector("#review-report")
    save_screenshot(page, "privacy-review-report")


def test_a_nurse_is_refused_every_privacy_page(world, tab):
    """R1: each page answers 403 (and shows no form) to a call handler."""
    page = signed_in(world, tab, "nurse.a")
    assert page.locator("nav a[href='/privacy']").count() == 0
    for path in PRIVACY_PAGES:
        response = page.goto(world.served.url(path))
        assert response is not None and response.status == 403, path
        assert page.locator("main form").count() == 0
    save_screenshot(page, "privacy-refused")
