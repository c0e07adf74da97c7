"""Accounts, sign-in and tokens for tests of the HTTP service.

::

    with cheap_password_hashing():
        account = enrolled_account(vault, "nurse.a", role="call_handler", care_units=["unit-a"])
        async with signed_in_client(create_app(vault), vault, account) as client:
            await client.get("/api/v1/auth/me")       # cookie + X-CSRF-Token sent

Accounts are created and enrolled through the services (as the operator),
then signed in over HTTP exactly as a browser does: password, then a TOTP
code computed with pyotp from the account's secret at the vault's clock.
A code is good once (replay protection), so an account signs in at most
twice per 30-second step on codes; further sign-ins in the same step spend
its recovery codes (ten).

In process, use ``httpx.AsyncClient`` over ``httpx.ASGITransport`` (with
``pytest.mark.anyio``); ``fastapi.testclient`` warns on import, which this
project's warnings-as-errors turns into a failure.  Against a real server,
:func:`sign_in` works on any ``httpx.Client``.  Use ``https://`` base URLs:
the session cookie is ``Secure`` and a client does not send it back over
plain http.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

import httpx
import pyotp
from anyio.from_thread import BlockingPortal
from argon2 import PasswordHasher

from callvault.core.access import Principal, Role
from callvault.core.errors import AlreadyExists
from callvault.services import accounts, credentials, tokens
from callvault.services.context import Vault
from callvault.testing.lifecycle import allow_ingest

OPERATOR = Principal("tester", Role.OPERATOR)
TEST_PASSWORD = "violet harbour tandem rowing"  # noqa: S105 (a test account)
CSRF_HEADER = "X-CSRF-Token"


@contextmanager
def cheap_password_hashing() -> Iterator[None]:
    """Argon2id at test cost (1 pass, 64 KiB) while the block runs; restored after."""
    saved = credentials.PASSWORD_HASHER
    credentials.PASSWORD_HASHER = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    try:
        yield
    finally:
        credentials.PASSWORD_HASHER = saved


@dataclass
class TestAccount:
    """An enrolled person: what they know and what their authenticator holds."""

    __test__ = False  # not a pytest test class

    username: str
    role: str
    care_units: tuple[str, ...]
    password: str
    totp_secret: str
    recovery_codes: list[str]
    used_steps: set[int] = field(default_factory=set)

    def code(self, now: dt.datetime) -> str:
        """A TOTP code the vault accepts at ``now``: the current step, or the next
        one if the current step was used already (replay protection)."""
        current = credentials.totp_step(now)
        last = max(self.used_steps, default=current - 2)
        step = max(current, last + 1)
        if step > current + 1:
            raise RuntimeError("every TOTP code near this time is used: advance the clock")
        self.used_steps.add(step)
        return pyotp.TOTP(self.totp_secret).generate_otp(step)

    def second_factor(self, now: dt.datetime) -> dict[str, str]:
        """The body for ``POST /api/v1/auth/totp``: a fresh TOTP code, or, once the
        codes near ``now`` are used, one of the recovery codes (each used once)."""
        try:
            return {"code": self.code(now)}
        except RuntimeError:
            if not self.recovery_codes:
                raise
            return {"recovery_code": self.recovery_codes.pop()}


def ensure_care_units(vault: Vault, units: Iterable[str]) -> None:
    """Create the care units if missing, each with recording policies (R19)."""
    units = tuple(units)
    for unit in units:
        with suppress(AlreadyExists):
            accounts.create_care_unit(vault, OPERATOR, unit, f"Care unit {unit}")
    allow_ingest(vault, units)


def enrol(vault: Vault, username: str, token: str, password: str = TEST_PASSWORD) -> TestAccount:
    """Complete an enrolment link's token through the services."""
    start = accounts.start_enrolment(vault, token)
    secret = parse_qs(urlparse(start.otpauth_uri).query)["secret"][0]
    account = TestAccount(username, "", (), password, secret, [])
    account.recovery_codes = accounts.finish_enrolment(
        vault, token, password, account.code(vault.now())
    )
    return account


def enrolled_account(
    vault: Vault,
    username: str,
    *,
    role: str,
    care_units: Iterable[str] = (),
    password: str = TEST_PASSWORD,
) -> TestAccount:
    """Create (care units too, if missing) and enrol an account as the operator."""
    units = tuple(care_units)
    ensure_care_units(vault, units)
    enrolment = accounts.create_user(vault, OPERATOR, username, role, units)
    account = enrol(vault, enrolment.username, enrolment.token, password)
    account.role, account.care_units = role, units
    return account


def recorder_token(vault: Vault, name: str, care_unit: str) -> str:
    """A new ``cvt_`` ingest token for ``care_unit`` (made if missing)."""
    ensure_care_units(vault, [care_unit])
    return tokens.create(vault, OPERATOR, name, care_unit).token


def _check(response: httpx.Response, step: str) -> None:
    if response.status_code != 200:
        raise AssertionError(f"sign-in {step} answered {response.status_code}: {response.text}")


def sign_in(client: httpx.Client, vault: Vault, account: TestAccount) -> str:
    """Sign in over HTTP; the client keeps the cookie and sends the CSRF header.

    Works with any ``httpx.Client`` (e.g. against a uvicorn server over TLS).
    Returns the CSRF token.
    """
    body = {"username": account.username, "password": account.password}
    _check(client.post("/api/v1/auth/login", json=body), "password")
    response = client.post("/api/v1/auth/totp", json=account.second_factor(vault.now()))
    _check(response, "totp")
    csrf: str = response.json()["csrf_token"]
    client.headers[CSRF_HEADER] = csrf
    return csrf


async def sign_in_async(client: httpx.AsyncClient, vault: Vault, account: TestAccount) -> str:
    """:func:`sign_in` for ``httpx.AsyncClient`` (e.g. over ``httpx.ASGITransport``)."""
    body = {"username": account.username, "password": account.password}
    _check(await client.post("/api/v1/auth/login", json=body), "password")
    response = await client.post("/api/v1/auth/totp", json=account.second_factor(vault.now()))
    _check(response, "totp")
    csrf: str = response.json()["csrf_token"]
    client.headers[CSRF_HEADER] = csrf
    return csrf


@asynccontextmanager
async def signed_in_client(
    app: object, vault: Vault, account: TestAccount, base_url: str = "https://testserver"
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of ``app`` (an ASGI application), signed in as ``account``."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        await sign_in_async(client, vault, account)
        yield client


# --- a synchronous client into an in-process app ---------------------------------------


class _Chunks(httpx.AsyncByteStream):
    """A request body handed to the application in messages of ``size``, as a server would."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data, self._size = data, size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for at in range(0, len(self._data), self._size):
            yield self._data[at : at + self._size]


Exchange = Callable[[httpx.Request, httpx.Response, bytes], None]


class PortalTransport(httpx.BaseTransport):
    """A synchronous httpx transport into an ASGI application that runs on a blocking
    portal's event loop, so synchronous tests (and hypothesis) can drive it.

    ``chunk`` hands the request body over in messages of that many bytes, as a
    server would (streamed ingest); ``on_exchange`` sees every request, answer
    and answer body (for leak checks).
    """

    def __init__(
        self,
        app: object,
        portal: BlockingPortal,
        *,
        chunk: int | None = None,
        on_exchange: Exchange | None = None,
    ) -> None:
        self._asgi = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self._portal = portal
        self._chunk = chunk
        self._on_exchange = on_exchange

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        if self._chunk:
            forwarded = httpx.Request(
                request.method, request.url, headers=request.headers,
                stream=_Chunks(body, self._chunk),
            )  # fmt: skip
        else:
            forwarded = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )

        async def send() -> tuple[httpx.Response, bytes]:
            response = await self._asgi.handle_async_request(forwarded)
            return response, await response.aread()

        response, content = self._portal.call(send)
        if self._on_exchange is not None:
            self._on_exchange(request, response, content)
        return httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )
