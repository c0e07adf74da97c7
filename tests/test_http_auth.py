"""Enrolment, two-factor sign-in, sessions, CSRF, throttling and API tokens over HTTP (R7, R11).

In process, through ``httpx.ASGITransport`` against the real application
object; the vault's clock is injected so timeouts and locks can be crossed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pyotp
import pytest

from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.entrypoints.http.app import create_app
from callvault.services.context import Vault
from callvault.testing.clock import FakeClock
from callvault.testing.http import (
    TEST_PASSWORD,
    TestAccount,
    cheap_password_hashing,
    enrolled_account,
    ensure_care_units,
    recorder_token,
    sign_in_async,
    signed_in_client,
)

pytestmark = pytest.mark.anyio

T0 = dt.datetime(2026, 3, 2, 9, 0, 0, tzinfo=dt.UTC)
COOKIE = "__Host-cv_session"
BASE = "https://testserver"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def vault(tmp_path: Path, clock: FakeClock) -> Iterator[Vault]:
    for sub in ("data", "keys"):
        (tmp_path / sub).mkdir(mode=0o700)
    keys = KeyfileProvider.create(
        tmp_path / "keys" / "k", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
    )
    opened = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{tmp_path / 'data' / 'vault.db'}"),
        blobs=open_blobstore("memory:"),
        keys=keys,
        clock=clock,
        probe=None,  # type: ignore[arg-type]
        origin="callvault.test/http-auth",
    )
    with cheap_password_hashing():
        yield opened
    opened.close()


@pytest.fixture
async def make_client(vault: Vault) -> AsyncIterator[object]:
    app = create_app(vault)
    clients: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def admin(vault: Vault) -> TestAccount:
    return enrolled_account(vault, "admin.a", role="administrator")


@pytest.fixture
def nurse(vault: Vault) -> TestAccount:
    return enrolled_account(vault, "nurse.a", role="call_handler", care_units=["unit-a"])


async def password_step(client: httpx.AsyncClient, account: TestAccount) -> str:
    response = await client.post(
        "/api/v1/auth/login", json={"username": account.username, "password": account.password}
    )
    assert response.status_code == 200, response.text
    return response.cookies[COOKIE]


async def test_an_administrator_creates_a_user_who_enrols_and_signs_in(
    vault: Vault, admin: TestAccount, make_client: object
) -> None:
    admin_client = make_client()  # type: ignore[operator]
    await sign_in_async(admin_client, vault, admin)
    created = await admin_client.post("/api/v1/care-units", json={"id": "unit-b", "name": "B"})
    assert created.status_code == 201
    made = await admin_client.post(
        "/api/v1/users",
        json={"username": "Sup.B", "role": "supervisor", "care_units": ["unit-b"]},
    )
    assert made.status_code == 201
    link = urlparse(made.json()["enrolment_link"])
    assert (link.scheme, link.netloc, link.path, link.query) == (
        "https",
        "testserver",
        "/enrol",
        "",
    )
    token = link.fragment  # in the fragment: browsers never send it to a server

    person = make_client()  # type: ignore[operator]
    started = await person.post("/api/v1/auth/enrol/start", json={"token": token})
    assert started.status_code == 200
    assert started.json()["qr_svg"].startswith("<svg")
    secret = parse_qs(urlparse(started.json()["otpauth_uri"]).query)["secret"][0]
    weak = await person.post(
        "/api/v1/auth/enrol/finish",
        json={"token": token, "password": "sup.b-password", "totp_code": "000000"},
    )
    assert weak.status_code == 400
    code = pyotp.TOTP(secret).at(vault.now())
    finished = await person.post(
        "/api/v1/auth/enrol/finish",
        json={"token": token, "password": TEST_PASSWORD, "totp_code": code},
    )
    assert finished.status_code == 200
    assert len(set(finished.json()["recovery_codes"])) == 10
    again = await person.post("/api/v1/auth/enrol/start", json={"token": token})
    assert again.status_code == 401

    await password_step(person, TestAccount("sup.b", "", (), TEST_PASSWORD, secret, []))
    later = pyotp.TOTP(secret).at(vault.now() + dt.timedelta(seconds=30))
    done = await person.post("/api/v1/auth/totp", json={"code": later})
    assert done.status_code == 200
    me = await person.get("/api/v1/auth/me")
    assert me.json() == {
        "username": "sup.b",
        "role": "supervisor",
        "care_units": ["unit-b"],
        "emergency_until": None,
        "emergency_units": [],
    }


async def test_the_session_cookie_is_host_only_secure_httponly_and_strict(
    nurse: TestAccount, make_client: object
) -> None:
    client = make_client()  # type: ignore[operator]
    response = await client.post(
        "/api/v1/auth/login", json={"username": "nurse.a", "password": nurse.password}
    )
    cookie = response.headers["set-cookie"]
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert cookie.startswith(f"{COOKIE}=")
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= attributes
    assert not any(a.startswith(("domain", "max-age", "expires")) for a in attributes)
    assert response.cookies[COOKIE] not in response.text


async def test_the_pre_sign_in_cookie_dies_when_the_second_factor_is_given(
    vault: Vault, nurse: TestAccount, make_client: object
) -> None:
    client = make_client()  # type: ignore[operator]
    pending = await password_step(client, nurse)
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    done = await client.post("/api/v1/auth/totp", json={"code": nurse.code(vault.now())})
    assert done.status_code == 200
    assert client.cookies[COOKIE] != pending
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    planted = make_client()  # type: ignore[operator]
    planted.cookies.set(COOKIE, pending, domain="testserver")
    assert (await planted.get("/api/v1/auth/me")).status_code == 401


async def test_a_totp_code_cannot_be_replayed(
    vault: Vault, nurse: TestAccount, make_client: object
) -> None:
    code = nurse.code(vault.now())
    first, second = make_client(), make_client()  # type: ignore[operator]
    await password_step(first, nurse)
    assert (await first.post("/api/v1/auth/totp", json={"code": code})).status_code == 200
    await password_step(second, nurse)
    assert (await second.post("/api/v1/auth/totp", json={"code": code})).status_code == 401


async def test_state_changes_need_the_csrf_header(
    vault: Vault, admin: TestAccount, make_client: object
) -> None:
    client = make_client()  # type: ignore[operator]
    csrf = await sign_in_async(client, vault, admin)
    del client.headers["X-CSRF-Token"]
    body = {"id": "unit-c", "name": "C"}
    assert (await client.post("/api/v1/care-units", json=body)).status_code == 403
    wrong = {"X-CSRF-Token": "x" + csrf[1:]}
    assert (await client.post("/api/v1/care-units", json=body, headers=wrong)).status_code == 403
    assert (await client.get("/api/v1/users")).status_code == 200  # reads need none
    good = {"X-CSRF-Token": csrf}
    assert (await client.post("/api/v1/care-units", json=body, headers=good)).status_code == 201


async def test_the_session_ends_after_fifteen_idle_minutes(
    vault: Vault, nurse: TestAccount, clock: FakeClock
) -> None:
    async with signed_in_client(create_app(vault), vault, nurse) as client:
        clock.advance(minutes=14)
        assert (await client.get("/api/v1/auth/me")).status_code == 200
        clock.advance(minutes=15)
        assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_logout_really_ends_the_session(
    vault: Vault, nurse: TestAccount, make_client: object
) -> None:
    client = make_client()  # type: ignore[operator]
    await sign_in_async(client, vault, nurse)
    stolen = client.cookies[COOKIE]
    response = await client.post("/api/v1/auth/logout")
    assert response.status_code == 204
    assert "max-age=0" in response.headers["set-cookie"].lower()
    replay = make_client()  # type: ignore[operator]
    replay.cookies.set(COOKIE, stolen, domain="testserver")
    assert (await replay.get("/api/v1/auth/me")).status_code == 401


async def test_wrong_password_and_unknown_user_answer_identically(
    nurse: TestAccount, make_client: object
) -> None:
    client = make_client()  # type: ignore[operator]
    answers = []
    for name in ("nurse.a", "no.such.user"):
        response = await client.post(
            "/api/v1/auth/login", json={"username": name, "password": "not " + TEST_PASSWORD}
        )
        answers.append((response.status_code, response.text, COOKIE in response.cookies))
    assert answers[0] == answers[1] == (answers[0][0], answers[0][1], False)
    assert answers[0][0] == 401


async def test_a_locked_account_answers_429_with_retry_after(
    nurse: TestAccount, clock: FakeClock, make_client: object
) -> None:
    client = make_client()  # type: ignore[operator]
    for _ in range(5):
        response = await client.post(
            "/api/v1/auth/login", json={"username": "nurse.a", "password": "wrong password!"}
        )
        assert response.status_code == 401
    locked = await client.post(
        "/api/v1/auth/login", json={"username": "nurse.a", "password": nurse.password}
    )
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == str(15 * 60)
    clock.advance(minutes=15)
    await password_step(client, nurse)


async def test_api_tokens_are_shown_once_listed_without_secret_and_revocable(
    vault: Vault, admin: TestAccount, make_client: object
) -> None:
    ensure_care_units(vault, ["unit-a"])
    client = make_client()  # type: ignore[operator]
    await sign_in_async(client, vault, admin)
    made = await client.post("/api/v1/tokens", json={"name": "rec-a", "care_unit": "unit-a"})
    assert made.status_code == 201
    token = made.json()["token"]
    listed = await client.get("/api/v1/tokens")
    assert token not in listed.text and listed.json()["tokens"][0]["name"] == "rec-a"

    service = make_client()  # type: ignore[operator]
    service.headers["Authorization"] = f"Bearer {token}"
    me = await service.get("/api/v1/auth/me")
    assert me.json()["username"] == "token:rec-a" and me.json()["role"] == "recorder"
    assert (await service.get("/api/v1/users")).status_code == 403
    revoked = await client.delete(f"/api/v1/tokens/{made.json()['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert (await service.get("/api/v1/auth/me")).status_code == 401


async def test_people_without_user_management_get_403_on_admin_routes(
    vault: Vault, nurse: TestAccount, make_client: object
) -> None:
    client = make_client()  # type: ignore[operator]
    await sign_in_async(client, vault, nurse)
    calls = [
        ("POST", "/api/v1/users", {"username": "x.y.z", "role": "log_reviewer"}),
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/users/reset", {"username": "nurse.a"}),
        ("POST", "/api/v1/users/disable", {"username": "nurse.a"}),
        ("POST", "/api/v1/care-units", {"id": "unit-x", "name": "X"}),
        ("GET", "/api/v1/care-units", None),
        ("POST", "/api/v1/tokens", {"name": "r", "care_unit": "unit-a"}),
        ("GET", "/api/v1/tokens", None),
        ("DELETE", "/api/v1/tokens/2f1c1b9e-2f3a-4c1e-9d7a-0c6b7e1f4a55", None),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body)
        assert response.status_code == 403, (method, path)


async def test_requests_without_credentials_get_401_on_every_account_route(
    make_client: object,
) -> None:
    client = make_client()  # type: ignore[operator]
    for method, path in [
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/totp"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/tokens"),
        ("GET", "/api/v1/care-units"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/enrol/start"),
        ("POST", "/api/v1/auth/enrol/finish"),
    ]:
        bodies: tuple[dict[str, str] | None, ...] = (None, {})
        for body in bodies:  # no body at all, or one without credentials
            response = await client.request(method, path, json=body)
            assert response.status_code == 401, (method, path, body, response.text)


async def test_bearer_requests_need_no_csrf_header(vault: Vault, make_client: object) -> None:
    token = recorder_token(vault, "rec-b", "unit-b")
    client = make_client()  # type: ignore[operator]
    response = await client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}
    )
    # Past authentication and CSRF: refused by the service, not as a forgery.
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_input"


async def test_a_malformed_token_id_without_credentials_is_still_401(make_client: object) -> None:
    client = make_client()  # type: ignore[operator]
    response = await client.delete("/api/v1/tokens/not-a-uuid")
    assert response.status_code == 401
