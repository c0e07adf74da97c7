"""R1/R2 sweep: every route of the application object, called by everyone who must get nothing.

The routes are taken from ``api_app(vault).routes`` (never from a list
kept by hand), so a route added tomorrow is swept tomorrow.  The web pages
answer browsers (redirects to the sign-in page, HTML) and have their own
sweep in test_web_sweep.py.  Each one is
called without credentials, with an expired session, with a logged-out
session (both of a supervisor of the recording's own care unit, who could see
it while signed in), with the recording unit's recorder token, and by signed-in
people of another care unit.  A recording with planted identifiers is stored
first; no answer, whatever its status, may carry its id, call id, caller
number, personnummer or any stretch of its audio.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import typing
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio.from_thread
import httpx
import pytest
from anyio.from_thread import BlockingPortal
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.routing import Route

from callvault.adapters.audio import analyse
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.core.access import Principal, Role
from callvault.core.audit import Action, AuditEvent
from callvault.entrypoints.http import deps
from callvault.entrypoints.http.app import create_app
from callvault.services import tokens
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.testing.audio import wav_header
from callvault.testing.clock import FakeClock
from callvault.testing.http import (
    PortalTransport,
    TestAccount,
    cheap_password_hashing,
    enrolled_account,
    recorder_token,
    sign_in,
)
from callvault.testing.scan import identifier_forms


def api_app(vault: Vault) -> Any:
    """The application with the API routes only (the pages are swept elsewhere)."""
    return create_app(vault, web=False)


T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
OPERATOR = Principal("tester", Role.OPERATOR)
BASE = "https://testserver"
API = "/api/v1"
PHONE, PHONE_E164 = "070-174 06 05", "+46701740605"
PNR = "19121212-1212"
CALL_ID = "sweep-victim-call-8841"
REASON = "Caller rang back about the earlier advice"

# Open without credentials: the health check (data-free) and the sign-in steps,
# which answer 401 when their input is missing.
OPEN = frozenset({("GET", "/healthz")})
SIGN_IN = frozenset(
    ("POST", f"{API}/auth/{step}") for step in ("login", "totp", "enrol/start", "enrol/finish")
)
# Routes about the caller's own credentials, open to every signed-in principal
# (a token included): they answer who you are, the API's shape, or end the
# session; nothing about any recording.
SELF = frozenset(
    {("GET", f"{API}/auth/me"), ("GET", f"{API}/openapi.json"), ("POST", f"{API}/auth/logout")}
)
INGEST = ("POST", f"{API}/recordings")

# A request for every route that needs more than its path: valid enough to get
# past request validation, so what answers is the authorisation.  A new route
# with a required body fails the sweep until it gets an entry here.
Example = dict[str, Any]
EXAMPLES: dict[tuple[str, str], Example] = {
    ("POST", f"{API}/auth/login"): {"json": {}},
    ("POST", f"{API}/auth/totp"): {"json": {}},
    ("POST", f"{API}/auth/enrol/start"): {"json": {}},
    ("POST", f"{API}/auth/enrol/finish"): {"json": {}},
    # An outsider giving someone the recording's unit, or taking over its supervisor.
    ("POST", f"{API}/users"): {
        "json": {"username": "sweep.made", "role": "supervisor", "care_units": ["unit-a"]}
    },
    ("POST", f"{API}/users/reset"): {"json": {"username": "boss.a"}},
    ("POST", f"{API}/users/disable"): {"json": {"username": "boss.a"}},
    ("POST", f"{API}/care-units"): {"json": {"id": "unit-sweep", "name": "Sweep unit"}},
    ("POST", f"{API}/tokens"): {"json": {"name": "sweep-token", "care_unit": "unit-a"}},
    ("GET", f"{API}/recordings"): {"params": {"care_unit": "unit-a"}},
    ("POST", f"{API}/recordings/search"): {"json": {"caller": PHONE, "personnummer": PNR}},
    ("POST", f"{API}/recordings/{{recording_id}}/playback"): {"json": {"reason": REASON}},
    ("POST", f"{API}/recordings/{{recording_id}}/download"): {"json": {"reason": REASON}},
    # Own unit only: an emergency grant that reached the recording's unit would
    # rightly show it, which is the matrix tests' business, not the sweep's.
    ("POST", f"{API}/emergency"): {
        "json": {"reason": REASON, "care_units": ["unit-b"], "duration_minutes": 30}
    },
    ("GET", f"{API}/audit"): {"params": {"recording_id": "{recording_id}"}},
    ("POST", f"{API}/policies"): {
        "json": {
            "care_unit": "unit-a",
            "retention_class": "quality",
            "purpose": "Sweep purpose",
            "legal_basis": "Sweep basis",
            "keep_days": 1,
        }
    },
    ("POST", f"{API}/policies/retire"): {
        "json": {"care_unit": "unit-a", "retention_class": "record"}
    },
    ("POST", f"{API}/recordings/{{recording_id}}/hold"): {"json": {"reference": "DNR 1/2"}},
    ("POST", f"{API}/recordings/{{recording_id}}/release"): {"json": {"reference": "DNR 1/2"}},
    ("POST", f"{API}/erasure"): {
        "json": {"caller": PHONE, "reason": "Sweep erasure", "dry_run": True}
    },
    ("POST", f"{API}/privacy/export"): {"json": {"caller": PHONE}},
    ("POST", f"{API}/privacy/extract"): {"json": {"caller": PHONE, "with_users": True}},
    ("POST", f"{API}/privacy/breach"): {"json": {"actor": "boss.a", "show_callers": True}},
    ("POST", f"{API}/review/run"): {"json": {"period": "2026-03", "sample_share": 1}},
    ("POST", f"{API}/review/items/{{item_id}}/resolve"): {"json": {"outcome": "ok"}},
    ("GET", f"{API}/review/report"): {"params": {"period": "2026-03"}},
}

# Paths where a careless server would list directories or documents.
LISTINGS = (
    "/", "/api", "/api/", "/api/v1", "/api/v1/", "/api/v1/recordings/",
    "/api/v1/recordings/search/", "/api/v1/audit/", "/static/", "/static", "/files/",
    "/recordings/", "/data/", "/data/blobs/", "/blobs/", "/var/", "/tmp/", "/.git/",
    "/docs", "/redoc", "/openapi.json", "/api/v1/docs", "/healthz/", "/index.html",
)  # fmt: skip


@dataclass(frozen=True)
class Call:
    method: str
    template: str
    route: APIRoute | Route

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.template)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


@dataclass
class World:
    vault: Vault
    clock: FakeClock
    portal: BlockingPortal
    people: dict[str, TestAccount]
    recorder: str
    token_id: str
    recording_id: str
    audio: bytes
    windows: set[bytes] = field(default_factory=set)

    def client(self) -> httpx.Client:
        transport = PortalTransport(api_app(self.vault), self.portal)
        return httpx.Client(transport=transport, base_url=BASE)

    def person(self, name: str) -> httpx.Client:
        client = self.client()
        sign_in(client, self.vault, self.people[name])
        self.clock.advance(seconds=30)  # a fresh TOTP step for the next sign-in
        return client

    def recorder_client(self) -> httpx.Client:
        client = self.client()
        client.headers["Authorization"] = f"Bearer {self.recorder}"
        return client

    def recordings(self) -> int:
        return sum(1 for _ in self.vault.store.iter_recordings())


def noise_wav(size: int, seed: int) -> bytes:
    """An 8 kHz 16-bit mono WAV of noise: every 12-byte stretch of it is unique."""
    data = (size - 44) // 2 * 2
    return wav_header(sample_rate=8000, channels=1, data_size=data) + random.Random(seed).randbytes(
        data
    )


def upload_form(call_id: str, audio: bytes, **fields: str) -> Example:
    form = {"call_id": call_id, "started_at": "2026-03-01T10:22:00+01:00", **fields}
    return {"data": form, "files": {"audio": ("call-0701740605.wav", audio, "audio/wav")}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("sweep")
    for sub in ("keys", "data"):
        (root / sub).mkdir(mode=0o700)
    clock = FakeClock(T0)
    vault = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{root / 'data' / 'vault.db'}"),
        blobs=open_blobstore((root / "blobs").as_uri()),
        keys=KeyfileProvider.create(root / "keys" / "k", b"pass", kdf_params=KdfParams(1, 1024, 1)),
        clock=clock,
        probe=analyse,
        origin=vault_service.origin_for(str(uuid.uuid4())),
        max_ingest_bytes=1024 * 1024,
    )
    try:
        vault_service.initialise(vault, OPERATOR)
        with cheap_password_hashing(), anyio.from_thread.start_blocking_portal() as portal:
            people = {
                name: enrolled_account(vault, name, role=role, care_units=units)
                for name, role, units in (
                    ("boss.a", "supervisor", ["unit-a"]),
                    ("boss.b", "supervisor", ["unit-b"]),
                    ("nurse.b", "call_handler", ["unit-b"]),
                )
            }
            recorder = recorder_token(vault, "rec-a", "unit-a")
            [info] = tokens.list_tokens(vault, OPERATOR)
            audio = noise_wav(6_000, 1)
            w = World(vault, clock, portal, people, recorder, str(info.id), "", audio)
            made = w.recorder_client().post(
                f"{API}/recordings",
                **upload_form(CALL_ID, audio, caller=PHONE, personnummer=PNR, agent="boss.a"),
            )
            assert made.status_code == 201, made.text
            w.recording_id = made.json()["id"]
            w.windows = {audio[i : i + 12] for i in range(len(audio) - 11)}
            yield w
    finally:
        vault.close()


# --- what the app has -------------------------------------------------------------------


def app_calls(vault: Vault) -> list[Call]:
    """Every (method, path template) the application routes, logout last (it ends the
    session the rest of a pass runs in)."""
    calls = []
    for context in iter_route_contexts(api_app(vault).routes):
        route = context.original_route
        assert isinstance(route, APIRoute | Route), (
            f"{type(route).__name__} at {context.path}: the sweep only knows how to call "
            "APIRoute and plain Route; extend it before adding other kinds of route"
        )
        path = context.path
        assert isinstance(path, str)
        calls += [Call(m, path, route) for m in sorted(context.methods or ())]
    return sorted(calls, key=lambda c: c.key == ("POST", f"{API}/auth/logout"))


def depends_on_principal(dependant: Dependant) -> bool:
    return any(d.call is deps.principal or depends_on_principal(d) for d in dependant.dependencies)


def request_for(world: World, call: Call) -> tuple[str, Example]:
    """The URL (path parameters filled with real ids) and the request options."""
    values = {"recording_id": world.recording_id, "token_id": world.token_id, "item_id": "1"}
    path = call.template
    for name in call.route.param_convertors:
        path = path.replace(f"{{{name}}}", values.get(name, str(uuid.uuid4())))
    if call.key == INGEST:
        return path, upload_form(f"sweep-{uuid.uuid4().hex[:12]}", noise_wav(3_000, 7))
    example = EXAMPLES.get(call.key)
    if example is None:
        body = call.route.body_field if isinstance(call.route, APIRoute) else None
        assert body is None or not body.field_info.is_required(), (
            f"{call} takes a body: add an example request to EXAMPLES"
        )
        return path, {}
    options = dict(example)
    if "params" in options:
        options["params"] = {
            k: v.format(recording_id=world.recording_id) for k, v in options["params"].items()
        }
    return path, options


def leaks(world: World, response: httpx.Response) -> list[str]:
    """What of the stored recording an answer gives away (status, body or headers)."""
    rid = uuid.UUID(world.recording_id)
    blob = response.content + str(response.headers).encode()
    found = [
        what
        for what, needle in (
            ("recording id", str(rid).encode()),
            ("recording id (hex)", rid.hex.encode()),
            ("call id", CALL_ID.encode()),
        )
        if needle in blob
    ]
    if any(form in blob for form in identifier_forms(PHONE_E164, PNR)):
        found.append("a planted identifier")
    if b"RIFF" in response.content or any(
        response.content[i : i + 12] in world.windows for i in range(len(response.content) - 11)
    ):
        found.append("audio bytes")
    return found


Sweep = list[tuple[Call, httpx.Response]]


def sweep(world: World, client: httpx.Client) -> Sweep:
    answers = []
    for call in app_calls(world.vault):
        path, options = request_for(world, call)
        response = client.request(call.method, path, **options)
        assert not leaks(world, response), (str(call), response.status_code, leaks(world, response))
        answers.append((call, response))
    return answers


def check_statuses(answers: Sweep, expect: Callable[[Call], set[int]]) -> None:
    wrong = [
        f"{call}: {response.status_code} (expected {sorted(expect(call))})"
        for call, response in answers
        if response.status_code not in expect(call)
    ]
    assert not wrong, "\n".join(wrong)


# Failed sign-ins are throttled per address: after a few sweeps the sign-in
# steps answer 429 instead of 401, which gives away no more.
SIGN_IN_REFUSED = frozenset({401, 429})
UNAUTHENTICATED = {"error": "unauthenticated", "message": "sign-in required"}


def unauthenticated(call: Call) -> set[int]:
    if call.key in OPEN:
        return {200}
    return set(SIGN_IN_REFUSED) if call.key in SIGN_IN else {401}


# --- the sweeps -----------------------------------------------------------------------


def test_the_sweep_covers_every_route_the_app_serves(world: World) -> None:
    calls = app_calls(world.vault)
    keys = [c.key for c in calls]
    assert len(keys) == len(set(keys))
    # A floor, so the sweep cannot silently sweep nothing.
    assert {INGEST, ("GET", f"{API}/recordings/{{recording_id}}/audio")} <= set(keys)
    assert len(calls) >= 25


# The audio hot path resolves the principal inside its one service call
# (playback.audio_request, with the one-second play cache), not through the
# dependency; the behavioural sweeps below cover it like every other route.
RESOLVED_IN_SERVICE = frozenset(
    (method, f"{API}/recordings/{{recording_id}}/audio") for method in ("GET", "HEAD")
)


def test_every_route_but_health_and_sign_in_needs_a_principal(world: World) -> None:
    open_without = [
        str(c)
        for c in app_calls(world.vault)
        if c.key not in OPEN | SIGN_IN | RESOLVED_IN_SERVICE
        and not (isinstance(c.route, APIRoute) and depends_on_principal(c.route.dependant))
    ]
    assert open_without == [], "routes that never resolve a principal"


def test_without_credentials_every_route_answers_401_and_only_health_answers(
    world: World,
) -> None:
    before = world.recordings()
    answers = sweep(world, world.client())
    check_statuses(answers, unauthenticated)
    health = next(r for c, r in answers if c.key in OPEN)
    assert health.json() == {"status": "ok"}
    for call, response in answers:
        if call.key not in OPEN | SIGN_IN:
            # A HEAD answer has the status and headers of a GET and never a body.
            if call.method != "HEAD":
                assert response.json() == UNAUTHENTICATED, call
            assert response.headers["www-authenticate"] == 'Bearer realm="callvault"', call
    assert world.recordings() == before


def test_an_expired_session_gets_401_on_every_route(world: World) -> None:
    client = world.person("boss.a")  # could see the recording while signed in
    assert client.get(f"{API}/recordings/{world.recording_id}").status_code == 200
    world.clock.advance(minutes=16)
    before = world.recordings()
    check_statuses(sweep(world, client), unauthenticated)
    assert world.recordings() == before


def test_a_logged_out_session_gets_401_on_every_route(world: World) -> None:
    client = world.person("boss.a")
    cookie = client.cookies[deps.SESSION_COOKIE]
    assert client.get(f"{API}/recordings/{world.recording_id}").status_code == 200
    assert client.post(f"{API}/auth/logout").status_code == 204
    # The browser dropped the cleared cookie; a thief who copied it replays it.
    client.cookies.clear()
    client.cookies.set(deps.SESSION_COOKIE, cookie, domain="testserver")
    check_statuses(sweep(world, client), unauthenticated)


def test_a_recorder_token_can_only_ingest(world: World) -> None:
    before = world.recordings()

    def expect(call: Call) -> set[int]:
        if call.key in OPEN:
            return {200}
        if call.key == INGEST:
            return {201}
        if call.key in SIGN_IN:
            return set(SIGN_IN_REFUSED)
        if call.key in SELF:
            # me and the API document, 200; logout has no session to end, 400.
            return {200} if call.method == "GET" else {400}
        return {401, 403, 404}

    check_statuses(sweep(world, world.recorder_client()), expect)
    assert world.recordings() == before + 1


@pytest.mark.parametrize("name", ["boss.b", "nurse.b"])
def test_people_of_another_care_unit_get_nothing_of_the_recording(world: World, name: str) -> None:
    before = world.recordings()

    def expect(call: Call) -> set[int]:
        if call.key in OPEN:
            return {200}
        if call.key in SIGN_IN:
            return set(SIGN_IN_REFUSED)
        if "{recording_id}" in call.template or call.key == ("GET", f"{API}/recordings"):
            return {403, 404}
        if call.key == ("POST", f"{API}/auth/logout"):
            return {204}
        # Signed in (never 401), never a server error; the answer itself is
        # checked for data by the sweep.
        return {200, 201, 204, 400, 403, 404}

    answers = sweep(world, world.person(name))
    check_statuses(answers, expect)
    found = next(r for c, r in answers if c.key == ("POST", f"{API}/recordings/search"))
    assert found.status_code == 200 and found.json()["items"] == []
    assert world.recordings() == before


def test_no_listing_or_document_anywhere_signed_in_or_not(world: World) -> None:
    for client in (world.client(), world.person("boss.a"), world.recorder_client()):
        for path in LISTINGS:
            response = client.get(path)
            assert response.status_code == 404, (path, response.status_code)
            assert response.json() == {"error": "not_found", "message": "not found"}, path
            assert not leaks(world, response)


def test_sweep_fixture_planted_a_recording_the_unit_can_see(world: World) -> None:
    """Control: the same requests do reach the data for its own supervisor, so the
    sweeps above fail for the right reason if access control breaks."""
    boss = world.person("boss.a")
    shown = boss.get(f"{API}/recordings/{world.recording_id}")
    assert shown.status_code == 200 and leaks(world, shown)
    grant = boss.post(f"{API}/recordings/{world.recording_id}/playback", json={"reason": REASON})
    assert grant.status_code == 200
    audio = boss.get(f"{API}/recordings/{world.recording_id}/audio")
    assert audio.status_code == 200 and "audio bytes" in leaks(world, audio)


def test_a_route_added_without_a_principal_fails_the_sweep(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep is derived from the app: a new route that forgot the principal is caught."""
    real = api_app

    def with_a_careless_route(vault: Vault) -> Any:
        app = real(vault)

        @app.get(f"{API}/recordings/{{recording_id}}/peaks")
        def peaks(recording_id: str) -> dict[str, str]:
            return {"id": recording_id}

        return app

    monkeypatch.setattr(sys.modules[__name__], "api_app", with_a_careless_route)
    with pytest.raises(AssertionError, match="peaks"):
        test_every_route_but_health_and_sign_in_needs_a_principal(world)
    with pytest.raises(AssertionError, match="peaks"):
        sweep(world, world.client())


def blank_body(route: APIRoute) -> dict[str, Any]:
    """The route's body with every required field blank (``" "`` or ``[]``): well
    formed for the framework, refused by any service that looks at it."""
    assert route.body_field is not None
    annotation = route.body_field.field_info.annotation
    model = next(a for a in (*typing.get_args(annotation), annotation) if isinstance(a, type))
    assert issubclass(model, BaseModel)
    body: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.is_required():
            blanks: tuple[object, ...] = (" ", [])
            body[name] = next(v for v in blanks if _accepts(info.annotation, v))
    model.model_validate(body)
    return body


def _accepts(annotation: Any, value: object) -> bool:
    try:
        TypeAdapter(annotation).validate_python(value)
    except ValidationError:
        return False
    return True


def test_a_recorder_token_is_refused_and_logged_before_its_input_is_looked_at(
    world: World,
) -> None:
    """R11/R13: a token probing with malformed input still gets 403, and the probe is
    logged as a denial, instead of a 400 that tells the input rules and leaves no trace."""
    client = world.recorder_client()
    wrong, unlogged = [], []
    for call in app_calls(world.vault):
        body = call.route.body_field if isinstance(call.route, APIRoute) else None
        if body is None or call.key in OPEN | SIGN_IN | SELF or call.key == INGEST:
            continue
        path, _ = request_for(world, call)
        head = _log_head(world)
        response = client.request(call.method, path, json=blank_body(call.route))
        if response.status_code not in {403, 404}:
            wrong.append(f"{call}: {response.status_code} {response.json()['error']}")
        elif not any(e.action == Action.ACCESS_DENIED for e in _log_since(world, head)):
            unlogged.append(str(call))
    assert not wrong, "\n".join(wrong)
    assert not unlogged, "refused without an access:denied entry: " + ", ".join(unlogged)


def _log_head(world: World) -> int:
    with world.vault.store.transaction() as tx:
        return tx.audit_head()[0]


def _log_since(world: World, seq: int) -> list[AuditEvent]:
    return [AuditEvent.from_canonical(r.body) for r in world.vault.store.iter_audit(seq)]
