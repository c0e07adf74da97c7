"""The application object in process: security headers, error shapes, the
request log, body limits and who may read the OpenAPI document (R1, R3, R5, R6, R27)."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from callvault.core.access import Principal
from callvault.core.errors import (
    IntegrityError,
    RangeNotSatisfiable,
    RateLimited,
    StorageError,
    Unauthenticated,
)
from callvault.entrypoints.http.app import create_app
from callvault.entrypoints.http.middleware import BodyLimitMiddleware
from callvault.services.context import Vault

pytestmark = pytest.mark.anyio

PNR = "19121212-1212"
PHONE = "070-1740605"
PLANTED = ("19121212", "121212-1212", "1212121212", "0701740605", "070-1740605", "1740605")

# Written out, not imported: a test that read the constants would agree with any typo.
EXPECTED_HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "content-security-policy": (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), geolocation=(), microphone=(), payment=(), usb=()",
    "cache-control": "no-store",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    """A tiny initialised embedded vault (cheap key derivation)."""
    from callvault.adapters.audio import analyse
    from callvault.adapters.blobstore import open_blobstore
    from callvault.adapters.db.store import SqlMetadataStore
    from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
    from callvault.core.ports import SystemClock
    from callvault.services import vault as vault_service

    root = tmp_path_factory.mktemp("http-app")
    for sub in ("data", "keys"):
        (root / sub).mkdir(mode=0o700)
    keys = KeyfileProvider.create(
        root / "keys" / "callvault.key", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
    )
    opened = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{root / 'data' / 'vault.db'}"),
        blobs=open_blobstore((root / "data" / "blobs").as_uri()),
        keys=keys,
        clock=SystemClock(),
        probe=analyse,
        origin=vault_service.origin_for(os.urandom(16).hex()),
    )
    vault_service.initialise(opened, Principal("tester", "operator"))
    yield opened
    opened.close()


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int
    note: str = Field(default="", max_length=4)


def _probe_routes() -> APIRouter:
    """Routes that exist only in these tests, to make each kind of failure happen."""
    router = APIRouter(prefix="/api/v1/_probe")

    @router.post("/items")
    def create_item(item: Item) -> dict[str, int]:
        return {"count": item.count}

    @router.get("/items")
    def list_items(limit: int = Query(10)) -> dict[str, int]:
        return {"limit": limit}

    @router.get("/items/{number}")
    def get_item(number: int) -> dict[str, int]:
        return {"number": number}

    @router.get("/boom")
    def boom() -> None:
        raise ValueError(f"caller {PNR} at {PHONE}")

    @router.get("/storage")
    def storage() -> None:
        raise StorageError("disk /srv/secret-mount failed")

    @router.get("/range")
    def bad_range() -> None:
        raise RangeNotSatisfiable(size=1234)

    @router.get("/throttled")
    def throttled(wait: int = 0) -> None:
        raise RateLimited("sign-in attempts", retry_after=wait)

    @router.get("/whoami")
    def whoami(request: Request) -> dict[str, str]:
        request.state.principal = Principal(
            "anna.svensson", "supervisor", care_unit="unit-a", session="0123456789abcdef"
        )
        return {"ok": "yes"}

    @router.get("/stream")
    def stream() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            yield b"\0" * 1024
            raise IntegrityError()

        return StreamingResponse(chunks(), media_type="audio/wav")

    @router.get("/banner")
    def banner() -> JSONResponse:
        return JSONResponse({}, headers={"Server": "gunicorn/1.0", "X-Powered-By": "PHP/5"})

    return router


def _outside_api() -> APIRouter:
    router = APIRouter()

    @router.get("/static-probe")
    def cached() -> JSONResponse:
        return JSONResponse({}, headers={"Cache-Control": "max-age=60"})

    return router


@pytest.fixture
def app(vault: Vault) -> FastAPI:
    app = create_app(vault)
    app.include_router(_probe_routes())
    app.include_router(_outside_api())
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        yield client


def signed_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``Authorization: Bearer good`` resolve to a supervisor, anything else 401."""

    def resolve(vault: Vault, *, authorization: str | None = None, **_: object) -> Principal:
        if authorization != "Bearer good":
            raise Unauthenticated()
        return Principal("sam", "supervisor", care_unit="unit-a", session="00112233445566ff")

    monkeypatch.setattr("callvault.services.accounts.resolve", resolve, raising=False)


def assert_secured(response: httpx.Response) -> None:
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url.path, name)
    assert "server" not in response.headers
    assert "x-powered-by" not in response.headers


async def test_every_kind_of_response_carries_the_security_headers(client):
    responses = [
        await client.get("/healthz"),
        await client.get("/no/such/route"),
        await client.post("/healthz"),
        await client.get("/api/v1/openapi.json"),
        await client.post("/api/v1/_probe/items", json={"count": "x"}),
        await client.get("/api/v1/_probe/boom"),
        await client.get("/api/v1/_probe/storage"),
        await client.get("/api/v1/_probe/range"),
        await client.post("/api/v1/_probe/items", content=b"{" * 70_000),
        await client.get("/api/v1/_probe/banner"),
    ]
    assert sorted({r.status_code for r in responses}) == [
        200,
        400,
        401,
        404,
        405,
        413,
        416,
        500,
        503,
    ]
    for response in responses:
        assert_secured(response)


async def test_health_check_is_open_and_says_nothing_else(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_unknown_routes_answer_404_in_the_error_shape_without_redirects(client):
    for path in ("/no/such/route", "/api/v1/nothing", "/healthz/", f"/api/v1/x/{PNR}"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "not_found", "message": "not found"}
        assert PNR not in response.text
        assert "location" not in response.headers


async def test_wrong_method_answers_405_in_the_error_shape(client):
    response = await client.delete("/healthz")
    assert response.status_code == 405
    assert response.json() == {"error": "method_not_allowed", "message": "method not allowed"}
    assert response.headers["allow"] == "GET"


async def test_framework_documentation_pages_do_not_exist(client):
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        assert (await client.get(path)).status_code == 404, path


async def test_openapi_document_needs_a_signed_in_principal(client, monkeypatch):
    signed_in(monkeypatch)
    anonymous = await client.get("/api/v1/openapi.json")
    assert anonymous.status_code == 401
    assert anonymous.json() == {"error": "unauthenticated", "message": "sign-in required"}
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    wrong = await client.get("/api/v1/openapi.json", headers={"Authorization": "Bearer bad"})
    assert wrong.status_code == 401

    document = await client.get("/api/v1/openapi.json", headers={"Authorization": "Bearer good"})
    assert document.status_code == 200
    body = document.json()
    assert body["openapi"].startswith("3.")
    assert body["info"] == {"title": "callvault", "version": "1"}
    assert "/api/v1/_probe/items" in body["paths"]
    assert "/healthz" not in body["paths"]
    assert "/api/v1/openapi.json" not in body["paths"]
    assert_secured(document)


async def test_openapi_without_credentials_is_refused_by_the_real_resolver(client):
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


@pytest.mark.parametrize(
    "request_args",
    [
        {"method": "POST", "url": "/api/v1/_probe/items", "json": {"count": PNR}},
        {"method": "POST", "url": "/api/v1/_probe/items", "json": {"count": 1, PNR: PHONE}},
        {"method": "POST", "url": "/api/v1/_probe/items", "json": {"count": 1, "note": PHONE}},
        {"method": "POST", "url": "/api/v1/_probe/items", "json": [PNR, PHONE]},
        {
            "method": "POST",
            "url": "/api/v1/_probe/items",
            "content": f'{{"count": {PNR}, "note": "{PHONE}"'.encode(),
            "headers": {"content-type": "application/json"},
        },
        {"method": "GET", "url": "/api/v1/_probe/items", "params": {"limit": PNR}},
        {"method": "GET", "url": f"/api/v1/_probe/items/{PNR}"},
        {"method": "GET", "url": f"/api/v1/_probe/items/{PHONE}"},
    ],
    ids=[
        "bad-type",
        "unknown-field",
        "too-long",
        "not-an-object",
        "bad-json",
        "query",
        "path",
        "path2",
    ],
)
async def test_validation_errors_are_400_and_never_echo_what_was_sent(client, request_args):
    response = await client.request(**request_args)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_input"
    assert set(body) == {"error", "message"}
    everything = response.text + repr(response.headers.raw)
    for planted in PLANTED:
        assert planted not in everything


async def test_unexpected_exception_is_a_generic_500_logged_by_type_only(client, caplog):
    caplog.set_level(logging.INFO, logger="callvault")
    response = await client.get("/api/v1/_probe/boom")
    assert response.status_code == 500
    assert response.json() == {"error": "server_error", "message": "internal server error"}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "ValueError" in logged
    assert not any(r.exc_info for r in caplog.records)
    for planted in PLANTED:
        assert planted not in logged


async def test_server_side_vault_errors_keep_their_code_but_not_their_detail(client):
    response = await client.get("/api/v1/_probe/storage")
    assert response.status_code == 503
    assert response.json() == {"error": "storage", "message": "service unavailable"}


async def test_unsatisfiable_range_names_the_size_in_content_range(client):
    response = await client.get("/api/v1/_probe/range")
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */1234"
    assert response.json()["error"] == "range_not_satisfiable"


async def test_rate_limited_answers_429_with_retry_after_when_known(client):
    waited = await client.get("/api/v1/_probe/throttled", params={"wait": 900})
    assert waited.status_code == 429
    assert waited.headers["retry-after"] == "900"
    assert waited.json()["error"] == "rate_limited"
    unknown = await client.get("/api/v1/_probe/throttled")
    assert unknown.status_code == 429
    assert "retry-after" not in unknown.headers


async def test_request_log_names_route_templates_not_raw_paths(client, caplog):
    caplog.set_level(logging.INFO, logger="callvault")
    await client.get(f"/api/v1/_probe/items/{PNR}")
    await client.get(f"/nothing/{PHONE}")
    await client.get("/api/v1/_probe/items", params={"limit": PNR})
    lines = [r.getMessage() for r in caplog.records if r.name == "callvault.http"]
    assert lines[0].startswith("GET /api/v1/_probe/items/{number} 400 ")
    assert lines[0].endswith(" error=invalid_input")
    assert lines[1].startswith("GET - 404 ")
    assert lines[2].startswith("GET /api/v1/_probe/items 400 ")
    for planted in PLANTED:
        assert planted not in "\n".join(lines)


async def test_request_log_names_the_session_but_not_the_person(client, caplog):
    caplog.set_level(logging.INFO, logger="callvault")
    await client.get("/api/v1/_probe/whoami")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "callvault.http"]
    assert line.startswith("GET /api/v1/_probe/whoami 200 ")
    assert line.endswith(" session=0123456789abcdef")
    assert "anna" not in line


async def test_a_stream_that_fails_midway_is_cut_not_completed(app, caplog):
    caplog.set_level(logging.INFO, logger="callvault")
    sent: list[dict] = []

    requested = False

    async def receive() -> dict:
        nonlocal requested
        if requested:  # the client stays connected
            await anyio.sleep_forever()
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/api/v1/_probe/stream",
        "raw_path": b"/api/v1/_probe/stream",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 443),
    }
    await app(scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    # Never the final empty chunk that would tell the client the file is whole.
    assert all(m.get("more_body", False) for m in bodies)
    lines = [r.getMessage() for r in caplog.records if r.name == "callvault.http"]
    assert any("IntegrityError" in line for line in lines)
    assert lines[-1].startswith("GET /api/v1/_probe/stream 200 ") and lines[-1].endswith(" cut")


async def test_banner_headers_set_by_a_route_are_removed(client):
    response = await client.get("/api/v1/_probe/banner")
    assert "server" not in response.headers
    assert "x-powered-by" not in response.headers


async def test_no_store_is_forced_under_api_and_the_default_elsewhere(client):
    outside = await client.get("/static-probe")
    assert outside.headers["cache-control"] == "max-age=60"
    assert (await client.get("/healthz")).headers["cache-control"] == "no-store"


async def test_declared_body_over_64_kib_is_refused_with_413(client):
    exact = await client.post("/api/v1/_probe/items", content=b" " * 65_536)
    assert exact.status_code == 400  # read (and found not to be JSON), not refused
    over = await client.post("/api/v1/_probe/items", content=b" " * 65_537)
    assert over.status_code == 413
    assert over.json() == {"error": "too_large", "message": "request entity too large"}


async def test_chunked_body_over_64_kib_is_refused_with_413(client):
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 4096

    response = await client.post("/api/v1/_probe/items", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


async def test_body_limit_exempts_only_the_streaming_ingest_route():
    async def count_body(scope, receive, send):
        total, more = 0, True
        while more:
            message = await receive()
            total += len(message.get("body", b""))
            more = message.get("more_body", False)
        await JSONResponse({"received": total})(scope, receive, send)

    guarded = BodyLimitMiddleware(count_body, limit=16)
    transport = httpx.ASGITransport(app=guarded)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
        ingest = await client.post("/api/v1/recordings", content=b"a" * 1000)
        assert ingest.json() == {"received": 1000}
        assert (await client.post("/api/v1/recordings/x", content=b"a" * 1000)).status_code == 413
        assert (await client.put("/api/v1/recordings", content=b"a" * 1000)).status_code == 413
        assert (await client.post("/api/v1/other", content=b"a" * 16)).json() == {"received": 16}
