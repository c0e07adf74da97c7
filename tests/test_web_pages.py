"""The web UI's pages in process: languages, static files, the page policy, CSRF and
what a page gives someone who is not signed in (R1, R7)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from callvault.entrypoints.http.app import create_app
from callvault.entrypoints.web import i18n, messages_en, messages_sv, static
from callvault.entrypoints.web.routes_signin import NOTICES
from callvault.testing.browser import open_test_vault
from callvault.testing.clock import FakeClock
from callvault.testing.http import cheap_password_hashing, enrolled_account

pytestmark = pytest.mark.anyio
BASE = "https://testserver"
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def world(tmp_path) -> AsyncIterator[tuple[object, httpx.AsyncClient]]:
    vault = open_test_vault(tmp_path, FakeClock(T0))
    with cheap_password_hashing():
        nurse = enrolled_account(vault, "nurse.a", role="call_handler", care_units=["unit-a"])
    app = create_app(vault)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield (vault, nurse), client
    vault.close()


def test_both_languages_have_the_same_messages_and_every_used_key_exists():
    assert set(messages_sv.MESSAGES) == set(messages_en.MESSAGES)
    used = set()
    for path in (static.STATIC_DIR.parent).rglob("*"):
        if path.suffix in (".html", ".py"):
            used |= set(re.findall(r"""t\(['"]([a-z_]+\.[a-z_.]+)['"]""", path.read_text()))
    used = {k for k in used if not k.endswith(".")} | set(NOTICES.values())
    assert used - set(messages_sv.MESSAGES) == set()


def test_swedish_numbers_and_dates():
    sv, en = i18n.Translator("sv"), i18n.Translator("en")
    assert sv.number(1234.5, 1) == "1\u00a0234,5"
    assert en.number(1234.5, 1) == "1,234.5"
    moment = dt.datetime(2026, 3, 2, 9, 5, tzinfo=dt.UTC)  # 10:05 in Stockholm (CET)
    assert sv.datetime(moment) == "2026-03-02 10:05"
    assert en.datetime(moment) == "2 Mar 2026, 10:05"
    assert sv.duration(65) == "1:05"
    assert i18n.choose(None, None) == "sv" and i18n.choose("en", "sv") == "en"
    assert i18n.choose("xx", "yy") == "sv"


async def test_static_files_are_cached_long_with_their_types_and_unknown_ones_404(world):
    _, client = world
    for name, media in (("app.css", "text/css"), ("app.js", "text/javascript")):
        response = await client.get(static.url(name))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media)
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        again = await client.get(
            static.url(name), headers={"if-none-match": response.headers["etag"]}
        )
        assert again.status_code == 304
    for path in ("/static/../pyproject.toml", "/static/nothing.js", "/static/"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "not_found", "message": "not found"}


async def test_pages_get_the_strict_page_policy_and_no_store(world):
    _, client = world
    response = await client.get("/signin")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["cache-control"] == "no-store"
    assert "<script>" not in response.text and " style=" not in response.text
    health = await client.get("/healthz")
    assert "script-src" not in health.headers["content-security-policy"]


async def test_a_page_needs_a_session_and_a_form_needs_its_csrf_token(world):
    (vault, nurse), client = world
    response = await client.get("/search")
    assert response.status_code == 303 and response.headers["location"] == "/signin"
    # Sign-in without the form token is refused before the password is checked.
    refused = await client.post("/signin", data={"username": "nurse.a", "password": nurse.password})
    assert refused.status_code == 403
    page = await client.get("/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    signed = await client.post(
        "/signin", data={"csrf": token, "username": "nurse.a", "password": nurse.password}
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/signin/code"
    done = await client.post(
        "/signin/code", data={"csrf": token, **nurse.second_factor(vault.now())}
    )
    assert done.status_code == 303 and done.headers["location"] == "/search"
    assert (await client.get("/search")).status_code == 200
    # A search without the session's CSRF field is refused and searches nothing.
    forged = await client.post("/search", data={"who": "070-123 45 67"})
    assert forged.status_code == 403
    assert "070" not in forged.text
