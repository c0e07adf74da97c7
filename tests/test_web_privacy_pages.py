"""The privacy officer's pages in process: who they refuse, forged forms, what the
answers hold and leave out (R3, R18-R22)."""

from __future__ import annotations

import datetime as dt
import io
import re
import uuid
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest

from callvault.core import agefile
from callvault.core.access import Principal, Role
from callvault.core.audit import Action
from callvault.entrypoints.http.app import create_app
from callvault.services import audit_view, ingest, retention
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.testing.audio import make_tone_wav
from callvault.testing.browser import OPERATOR, open_test_vault
from callvault.testing.clock import FakeClock
from callvault.testing.http import (
    TestAccount,
    cheap_password_hashing,
    enrolled_account,
    ensure_care_units,
)

pytestmark = pytest.mark.anyio
BASE = "https://testserver"
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
CALLER = "070-123 45 67"
SCRIPT = {"Callvault-Export-Request": "1"}  # what the export page's script sends

PAGES = (
    "/privacy",
    "/privacy/extract",
    "/privacy/export",
    "/privacy/breach",
    "/privacy/review-report",
    "/privacy/holds",
    "/privacy/erasure",
)
FORMS = {
    "/privacy/extract": {"caller": CALLER, "format": "json"},
    "/privacy/export": {"caller": CALLER},
    "/privacy/breach": {"actor": "nurse.a"},
    "/privacy/review-report": {"period": "2026-02"},
    "/privacy/holds/set": {"reference": "DNR 2026/114"},
    "/privacy/holds/release": {"reference": "DNR 2026/114"},
    "/privacy/erasure": {"caller": CALLER, "reason": "Begäran art. 17", "action": "erase",
                         "confirm": "1"},
}  # fmt: skip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    vault: Vault
    app: object
    people: dict[str, TestAccount]
    call: uuid.UUID


@pytest.fixture
async def world(tmp_path) -> AsyncIterator[World]:
    vault = open_test_vault(tmp_path, FakeClock(T0))
    with cheap_password_hashing():
        people = {
            name: enrolled_account(vault, name, role=role, care_units=units)
            for name, role, units in (
                ("nurse.a", "call_handler", ["unit-a"]),
                ("boss.a", "supervisor", ["unit-a"]),
                ("rev.x", "log_reviewer", []),
                ("admin.x", "administrator", []),
                ("dpo.x", "privacy_officer", []),
            )
        }
    call = add_call(vault, tmp_path)
    yield World(vault, create_app(vault), people, call)
    vault.close()


def add_call(vault: Vault, tmp_path, number: int = 1) -> uuid.UUID:
    ensure_care_units(vault, ["unit-a"])
    audio = tmp_path / f"call-{number}.wav"
    make_tone_wav(audio, 2.0 + number)  # distinct audio: ingest would dedupe a copy
    details = CallDetails.parse(
        care_unit="unit-a", started_at=T0 - dt.timedelta(hours=number), today=T0.date(),
        caller=CALLER, agent="nurse.a", call_id=f"privacy-pages-{number}",
    )  # fmt: skip
    return ingest.ingest(vault, OPERATOR, audio, details).recording_id


@asynccontextmanager
async def signed_in(world: World, name: str) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client signed in through the pages, and the pages' CSRF token."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.app), base_url=BASE
    ) as client:
        yield client, await _sign_in(world, client, name)


async def _sign_in(world: World, client: httpx.AsyncClient, name: str) -> str:
    account = world.people[name]
    page = await client.get("/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    form = {"csrf": token, "username": account.username, "password": account.password}
    assert (await client.post("/signin", data=form)).status_code == 303
    world.vault.clock.advance(seconds=30)  # type: ignore[attr-defined]
    done = await client.post(
        "/signin/code", data={"csrf": token, **account.second_factor(world.vault.now())}
    )
    assert done.status_code == 303, done.text
    start = await client.get(done.headers["location"])
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', start.text).group(1)
    return csrf


def entries(vault: Vault, action: Action) -> list[audit_view.AuditEntry]:
    query = audit_view.AuditQuery(action=str(action), limit=100)
    return audit_view.list_entries(vault, Principal("tester", Role.OPERATOR), query).entries


async def test_every_privacy_page_refuses_other_roles(world):
    """R1: a nurse, supervisor, reviewer or administrator gets 403 on every page and
    form, and no form of theirs reaches a caller's data."""
    for name in ("nurse.a", "boss.a", "rev.x", "admin.x"):
        async with signed_in(world, name) as (client, csrf):
            for path in PAGES:
                response = await client.get(path)
                # The review report is the log reviewer's too (review.manage).
                expected = 200 if (name, path) == ("rev.x", "/privacy/review-report") else 403
                assert response.status_code == expected, (name, path)
            for path, body in FORMS.items():
                if (name, path) == ("rev.x", "/privacy/review-report"):
                    continue
                body = {**body, "csrf": csrf, "recording_id": str(world.call)}
                response = await client.post(path, data=body, headers=SCRIPT)
                assert response.status_code == 403, (name, path, response.status_code)
                assert "070" not in response.text and "passphrase" not in response.text
    assert entries(world.vault, Action.SUBJECT_EXPORT) == []
    assert entries(world.vault, Action.AUDIT_EXTRACT) == []
    assert entries(world.vault, Action.SUBJECT_ERASE) == []


async def test_privacy_forms_without_the_csrf_field_change_nothing(world):
    """A forged form (no or a wrong CSRF field) is refused before any service runs."""
    async with signed_in(world, "dpo.x") as (client, csrf):
        for path, body in FORMS.items():
            for forged in ({}, {"csrf": csrf[::-1]}):
                data = {**body, **forged, "recording_id": str(world.call)}
                response = await client.post(path, data=data, headers=SCRIPT)
                assert response.status_code == 403, (path, response.status_code)
                assert "070" not in response.text
        for path in PAGES:
            assert (await client.get(path)).status_code == 200, path
    assert entries(world.vault, Action.SUBJECT_EXPORT) == []
    assert entries(world.vault, Action.AUDIT_EXTRACT) == []
    assert entries(world.vault, Action.SUBJECT_ERASE) == []
    assert entries(world.vault, Action.RECORDING_HOLD) == []
    assert entries(world.vault, Action.BREACH_REPORT) == []


async def test_a_signed_out_visitor_is_sent_to_sign_in_from_every_privacy_page(world):
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.app), base_url=BASE
    ) as client:
        for path in PAGES:
            response = await client.get(path)
            assert response.status_code == 303 and response.headers["location"] == "/signin"


async def test_extract_downloads_are_no_store_attachments_named_without_personal_data(world):
    """R18/R3: the identifier is never in the answer, the file name or the address."""
    async with signed_in(world, "dpo.x") as (client, csrf):
        for wanted, media in (("json", "application/json"), ("pdf", "application/pdf")):
            response = await client.post(
                "/privacy/extract", data={"csrf": csrf, "caller": CALLER, "format": wanted}
            )
            assert response.status_code == 200
            assert response.headers["content-type"].startswith(media)
            assert response.headers["cache-control"] == "no-store"
            disposition = response.headers["content-disposition"]
            assert re.fullmatch(r'attachment; filename="loggutdrag-\d{8}-\d{6}\.' + wanted + '"',
                                disposition)  # fmt: skip
            assert b"070" not in response.content and b"46701234567" not in response.content
        shown = await client.post("/privacy/extract", data={"csrf": csrf, "caller": CALLER})
        assert shown.status_code == 200 and str(world.call) in shown.text
        assert "070" not in shown.text and "46701234567" not in shown.text
        # A caller the vault does not know: a clear message, nothing else.
        unknown = await client.post(
            "/privacy/extract", data={"csrf": csrf, "caller": "070-765 43 21", "format": "pdf"}
        )
        assert unknown.status_code == 404 and "text/html" in unknown.headers["content-type"]
        assert "765" not in unknown.text
        bad = await client.post("/privacy/extract", data={"csrf": csrf, "caller": "hello"})
        assert bad.status_code == 400 and "hello" not in bad.text
    # Three extracts and the failed look-up of the unknown caller; "hello" never got that far.
    assert len(entries(world.vault, Action.AUDIT_EXTRACT)) == 4


async def test_an_export_is_the_posts_own_attachment_with_its_passphrase_header(world):
    """R21: the page script's POST answers the age file itself (no-store, named by date
    only) with the passphrase in a header; any process can answer it, and the server
    keeps nothing to fetch later."""
    async with signed_in(world, "dpo.x") as (client, csrf):
        made = await client.post(
            "/privacy/export", data={"csrf": csrf, "caller": CALLER}, headers=SCRIPT
        )
        assert made.status_code == 200
        assert made.headers["cache-control"] == "no-store"
        assert made.headers["content-type"] == "application/octet-stream"
        assert re.fullmatch(r'attachment; filename="registerutdrag-\d{8}-\d{6}\.zip\.age"',
                            made.headers["content-disposition"])  # fmt: skip
        assert made.headers["callvault-export-recordings"] == "1"
        passphrase = made.headers["callvault-export-passphrase"]
        assert re.fullmatch(r"([a-z2-9]{5}-){4}[a-z2-9]{5}", passphrase)
        assert made.content.startswith(b"age-encryption.org/v1\n")
        assert passphrase.encode() not in made.content and b"070" not in made.content
        opened = b"".join(agefile.decrypt(io.BytesIO(made.content), passphrase))
        assert "manifest.json" in zipfile.ZipFile(io.BytesIO(opened)).namelist()
        again = await client.get("/privacy/export")
        assert again.status_code == 200 and passphrase not in again.text
    assert len(entries(world.vault, Action.SUBJECT_EXPORT)) == 1
    # Another process (a second app on the same vault) serves the page just as well.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(world.vault)), base_url=BASE
    ) as fresh:
        csrf = await _sign_in(world, fresh, "dpo.x")
        other = await fresh.post(
            "/privacy/export", data={"csrf": csrf, "caller": CALLER}, headers=SCRIPT
        )
        assert other.status_code == 200 and other.content.startswith(b"age-encryption.org/v1")
    assert len(entries(world.vault, Action.SUBJECT_EXPORT)) == 2


async def test_an_export_form_sent_without_the_page_script_writes_no_export(world):
    """A plain form POST (no JavaScript) would hand out a file whose passphrase nobody
    saw: it gets the page back with a clear message, and no copy is made."""
    async with signed_in(world, "dpo.x") as (client, csrf):
        for marker in ({}, {"Callvault-Export-Request": "yes"}):
            plain = await client.post(
                "/privacy/export", data={"csrf": csrf, "caller": CALLER}, headers=marker
            )
            assert plain.status_code == 400
            assert plain.headers["content-type"].startswith("text/html")
            assert "callvault-export-passphrase" not in plain.headers
            assert "content-disposition" not in plain.headers
            assert "JavaScript" in plain.text and 'id="export-form"' in plain.text
            assert "070" not in plain.text and "46701234567" not in plain.text
        assert entries(world.vault, Action.SUBJECT_EXPORT) == []  # no look-up, no copy
        unknown = await client.post(
            "/privacy/export", data={"csrf": csrf, "caller": "070-765 43 21"}, headers=SCRIPT
        )
        assert unknown.status_code == 404 and "text/html" in unknown.headers["content-type"]
        assert "callvault-export-passphrase" not in unknown.headers and "765" not in unknown.text
    # Only the failed look-up of the unknown caller is logged; it made nothing.
    logged = entries(world.vault, Action.SUBJECT_EXPORT)
    assert [dict(e.event.detail) for e in logged] == [{"error": "unknown_caller"}]


async def test_erasure_needs_the_ticked_confirmation_and_never_echoes_the_caller(world):
    async with signed_in(world, "dpo.x") as (client, csrf):
        body = {"csrf": csrf, "caller": CALLER, "reason": "Begäran enligt art. 17"}
        unticked = await client.post("/privacy/erasure", data={**body, "action": "erase"})
        assert unticked.status_code == 200 and "data-dry-run" not in unticked.text
        preview = await client.post("/privacy/erasure", data=body)
        assert 'data-dry-run="yes"' in preview.text and str(world.call) in preview.text
        assert "070" not in preview.text and "46701234567" not in preview.text
    erased = entries(world.vault, Action.RECORDING_SHRED)
    assert erased == []  # quality or record: nothing erased without the confirmation


async def test_erasing_with_a_decision_shreds_the_eligible_and_keeps_the_held(world, tmp_path):
    """R20/R21: a record document goes early only with a decision; a hold always stays."""
    held = add_call(world.vault, tmp_path, number=2)
    officer = Principal("dpo.x", Role.PRIVACY_OFFICER, session="s-pages")
    retention.hold(world.vault, officer, held, "DNR 2026/114")
    async with signed_in(world, "dpo.x") as (client, csrf):
        body = {"csrf": csrf, "caller": CALLER, "reason": "Begäran enligt art. 17",
                "decision": "DNR 2026/7", "action": "erase", "confirm": "1"}  # fmt: skip
        done = await client.post("/privacy/erasure", data=body, headers={"hx-request": "true"})
        assert done.status_code == 200 and 'data-dry-run="no"' in done.text
        assert "<html" not in done.text  # the result only, for the page to swap in
        found = re.findall(r'data-verdict="([a-z_]+)" data-recording="([0-9a-f-]+)"', done.text)
        verdicts = {recording: verdict for verdict, recording in found}
        assert verdicts[str(held)] == "legal_hold"
        assert verdicts[str(world.call)] in ("erasable", "due")  # the decision lifts the duty
        assert "raderad" in done.text and "DNR 2026/114" in done.text
        assert "070" not in done.text
    shredded = entries(world.vault, Action.RECORDING_SHRED)
    assert [e.event.recording_id for e in shredded] == [world.call]


async def test_the_holds_page_lists_the_holds_in_force_and_logs_the_listing(world, tmp_path):
    """R20: the privacy officer sees what is held, by whom and under which reference."""
    held = add_call(world.vault, tmp_path, number=3)
    officer = Principal("dpo.x", Role.PRIVACY_OFFICER, session="s-pages")
    async with signed_in(world, "dpo.x") as (client, _csrf):
        empty = await client.get("/privacy/holds")
        assert empty.status_code == 200 and 'id="no-holds"' in empty.text
        retention.hold(world.vault, officer, held, "DNR 2026/115")
        listed = await client.get("/privacy/holds")
        table = listed.text[listed.text.index('id="holds"') :]
        assert str(held) in table and "DNR 2026/115" in table and "dpo.x" in table
    assert len(entries(world.vault, Action.HOLD_LIST)) == 2
