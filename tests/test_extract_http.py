"""The privacy officer's and log reviewer's HTTP routes, in process (R18, R21, R22, R17, R3).

The same services as the CLI: these tests check the wiring, the roles and
that identifiers travel in bodies only.
"""

from __future__ import annotations

import contextlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import anyio.from_thread
import httpx
import pytest
from anyio.from_thread import BlockingPortal

from callvault.core import agefile
from callvault.core.extract_verify import verify_extract
from callvault.entrypoints.http.app import create_app
from callvault.entrypoints.http.routes_privacy import PASSPHRASE_HEADER
from callvault.services import audit, exports, playback
from callvault.testing.http import (
    PortalTransport,
    TestAccount,
    cheap_password_hashing,
    enrolled_account,
    sign_in,
)
from privacy_world import CALLER, REASON, World, database_url, make_world

API = "/api/v1"
ROLES = {
    "po": ("privacy_officer", ()),
    "rev": ("log_reviewer", ()),
    "sup": ("supervisor", ("unit-a",)),
}


@pytest.fixture
def setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[World, dict[str, TestAccount]]]:
    # A cheap scrypt keeps the test fast; the format is the same.
    monkeypatch.setattr(exports, "WORK_FACTOR", 10)
    for url in database_url("sqlite", tmp_path):
        with make_world(tmp_path, url) as w, cheap_password_hashing():
            people = {
                name: enrolled_account(w.vault, f"{name}.http", role=role, care_units=units)
                for name, (role, units) in ROLES.items()
            }
            yield w, people


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with anyio.from_thread.start_blocking_portal() as running:
        yield running


def _client(w: World, account: TestAccount, portal: BlockingPortal) -> httpx.Client:
    transport = PortalTransport(create_app(w.vault, web=False), portal)
    client = httpx.Client(transport=transport, base_url="https://testserver")
    sign_in(client, w.vault, account)
    w.clock.advance(seconds=30)  # a fresh TOTP step for the next sign-in
    return client


def test_privacy_officer_gets_extract_pdf_export_and_breach_over_http(setup, portal):
    w, people = setup
    playback.open_playback(w.vault, w.who("boss.a"), w.mine[0], REASON)
    with contextlib.closing(_client(w, people["po"], portal)) as po:
        r = po.post(f"{API}/privacy/extract", json={"caller": CALLER})
        assert r.status_code == 200, r.text
        assert verify_extract(r.content, audit.verifier_key(w.vault)).ok
        r = po.post(
            f"{API}/privacy/extract", json={"caller": CALLER, "format": "pdf", "lang": "en"}
        )
        assert r.status_code == 200 and r.content.startswith(b"%PDF-")
        r = po.post(f"{API}/privacy/export", json={"caller": CALLER})
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        plain = b"".join(agefile.decrypt(io.BytesIO(r.content), r.headers[PASSPHRASE_HEADER]))
        assert "manifest.json" in zipfile.ZipFile(io.BytesIO(plain)).namelist()
        r = po.post(f"{API}/privacy/breach", json={"actor": "boss.a", "show_callers": True})
        assert r.status_code == 200 and r.json()["distinct_callers"] == 1


def test_reviewer_runs_lists_resolves_and_reports_over_http(setup, portal):
    w, people = setup
    w.clock.advance(days=5)  # Saturday: after hours
    playback.open_playback(w.vault, w.who("boss.a"), w.mine[0], REASON)
    with contextlib.closing(_client(w, people["rev"], portal)) as rev:
        r = rev.post(f"{API}/review/run", json={"period": "2026-03", "sample_share": 0})
        assert r.status_code == 200 and r.json()["found"]["after_hours"] >= 1
        items = rev.get(f"{API}/review/items").json()["items"]
        assert items
        r = rev.post(
            f"{API}/review/items/{items[0]['id']}/resolve",
            json={"outcome": "ok", "comment": "Covering a colleague"},
        )
        assert r.status_code == 204
        r = rev.post(f"{API}/review/items/{items[0]['id']}/resolve", json={"outcome": "ok"})
        assert r.status_code == 404
        report = rev.get(f"{API}/review/report", params={"period": "2026-03"}).json()
        assert report["by_outcome"] == {"ok": 1}
        assert rev.post(f"{API}/review/run", json={"period": "soon"}).status_code == 400


@pytest.mark.parametrize(
    ("name", "method", "path", "body"),
    [
        ("sup", "post", "/privacy/extract", {"caller": CALLER}),
        ("rev", "post", "/privacy/extract", {"caller": CALLER}),
        ("rev", "post", "/privacy/export", {"caller": CALLER}),
        ("rev", "post", "/privacy/breach", {"actor": "boss.a", "show_callers": True}),
        ("sup", "post", "/privacy/breach", {"actor": "boss.a"}),
        ("sup", "post", "/review/run", {"period": "2026-03"}),
        ("sup", "get", "/review/items", None),
    ],
)
def test_other_roles_are_refused(setup, portal, name, method, path, body):
    w, people = setup
    with contextlib.closing(_client(w, people[name], portal)) as client:
        kwargs = {"json": body} if body is not None else {}
        assert getattr(client, method)(API + path, **kwargs).status_code == 403


def test_unknown_caller_is_404_without_echoing_the_number(setup, portal):
    w, people = setup
    with contextlib.closing(_client(w, people["po"], portal)) as po:
        r = po.post(f"{API}/privacy/extract", json={"caller": "070-999 99 99"})
        assert r.status_code == 404 and "999" not in r.text
