"""R1/R2/R3 sweep of the web pages: every page route, called by everyone who must get nothing.

The routes are the ones ``create_app(vault)`` has outside ``/api`` and
``/healthz`` (never a list kept by hand), so a page added tomorrow is swept
tomorrow; a page that is neither open nor behind a session fails the sweep
until it is classified here.  Each page is called without a session, with an
expired session, with the recording unit's recorder token (pages are for
browser sessions only), by signed-in people of another care unit, and by an
administrator on the audio pages.  Every form is sent without, and with a
wrong, CSRF token by someone who could otherwise use it: refused, nothing
changed.  A recording with planted identifiers is stored first; no answer to
an outsider, whatever its status, carries its id, call id, caller number or
personnummer, and no address, response header or log line ever carries the
identifiers, whoever asks.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from anyio.from_thread import BlockingPortal
from fastapi.routing import iter_route_contexts

from callvault.core.access import Principal, Role
from callvault.entrypoints.http.app import create_app
from callvault.entrypoints.web.common import CSRF_COOKIE, SESSION_COOKIE
from callvault.services import emergency, ingest, review, tokens
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.testing.audio import make_tone_wav
from callvault.testing.browser import open_test_vault
from callvault.testing.clock import FakeClock
from callvault.testing.http import (
    PortalTransport,
    TestAccount,
    cheap_password_hashing,
    enrolled_account,
    recorder_token,
)
from callvault.testing.scan import identifier_forms

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
OPERATOR = Principal("tester", Role.OPERATOR)
BASE = "https://testserver"
PHONE, PHONE_E164 = "070-174 06 05", "+46701740605"
PNR = "19811218-9876"  # not the pages' own example number
CALL_ID = "web-sweep-victim-7731"
REASON = "Uppringaren ringde tillbaka om rådet"
NEEDLES = identifier_forms(PHONE_E164, PNR)

# Pages open without a session: sign-in, enrolment, language, static files, and
# "/" (which only redirects).  They carry no data of anyone.
OPEN = frozenset(
    {("GET", p) for p in ("/", "/signin", "/signin/code", "/enrol", "/language")}
    | {("GET", "/static/{name:path}")}
)
# Forms shown before sign-in: protected by the double-submit form token instead.
BEFORE_SIGN_IN = frozenset(
    ("POST", p) for p in ("/signin", "/signin/code", "/enrol/start", "/enrol/finish")
)
SIGNOUT = ("POST", "/signout")
# Pages of roles without recordings of their own: nobody else gets past the door.
STAFF_PAGES = ("/admin", "/audit", "/review", "/privacy")
# Routes answering the page's own script (JSON): no redirect, a bare status.
SCRIPTED = frozenset({("POST", "/recordings/{recording_id}/play")})
AUDIO_PAGES = frozenset(
    {
        ("GET", "/recordings/{recording_id}"),
        ("GET", "/recordings/{recording_id}/waveform.json"),
        ("POST", "/recordings/{recording_id}/play"),
        ("POST", "/recordings/{recording_id}/download"),
    }
)

# A form for every page that takes one: valid enough to reach the service, so
# what answers is the authorisation.  An outsider asks for the recording's unit
# or its people; a new form page fails the sweep until it has an entry here.
FORMS: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/search"): {"who": PHONE},
    ("POST", "/recordings/{recording_id}/play"): {"reason_code": "callback", "reason": REASON},
    ("POST", "/recordings/{recording_id}/download"): {"reason_code": "callback"},
    # Own unit only: an emergency grant reaching the recording's unit would
    # rightly show it, which is the access matrix's business, not the sweep's.
    ("POST", "/emergency"): {
        "reason": REASON, "scope": "units", "care_units": "unit-b", "minutes": "30"
    },
    ("POST", "/audit"): {"recording": "{recording_id}"},
    ("POST", "/audit/verify"): {},
    ("POST", "/review/{item_id}/resolve"): {"outcome": "ok", "comment": "Granskat"},
    ("POST", "/admin/users"): {
        "username": "sweep.made", "role": "supervisor", "care_units": "unit-a"
    },
    ("POST", "/admin/users/reset"): {"username": "boss.a"},
    ("POST", "/admin/users/disable"): {"username": "boss.a"},
    ("POST", "/admin/units"): {"unit_id": "unit-sweep", "name": "Sweep unit"},
    ("POST", "/admin/policies"): {
        "care_unit": "unit-a", "retention_class": "quality", "purpose": "Sweep purpose",
        "legal_basis": "Sweep basis", "keep_days": "1",
    },
    ("POST", "/admin/policies/retire"): {"care_unit": "unit-a", "retention_class": "record"},
    ("POST", "/admin/tokens"): {"name": "sweep-token", "care_unit": "unit-a"},
    ("POST", "/admin/tokens/revoke"): {"token_id": "{token_id}"},
    # The privacy officer's pages, asked about the planted caller and recording.
    ("POST", "/privacy/extract"): {"caller": PHONE, "with_users": "1"},
    ("POST", "/privacy/export"): {"caller": PHONE},
    ("POST", "/privacy/breach"): {"actor": "boss.a", "show_callers": "1"},
    ("POST", "/privacy/review-report"): {"period": "2026-03"},
    ("POST", "/privacy/holds/set"): {"recording_id": "{recording_id}", "reference": "DNR 1/2"},
    ("POST", "/privacy/holds/release"): {
        "recording_id": "{recording_id}", "reference": "DNR 1/2"
    },
    ("POST", "/privacy/erasure"): {
        "caller": PHONE, "reason": "Sweep erasure", "action": "erase", "confirm": "1"
    },
    SIGNOUT: {},
}  # fmt: skip


@dataclass
class Exchange:
    url: str
    status: int
    headers: httpx.Headers
    body: bytes


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The test's own HTTP client logs the addresses it asks for, some wrong on purpose.
        if not record.name.startswith(("httpx", "httpcore")):
            self.lines.append(self.format(record))


@dataclass(frozen=True)
class Call:
    method: str
    template: str
    params: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.template)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


@dataclass
class World:
    vault: Vault
    clock: FakeClock
    app: Any
    portal: BlockingPortal
    people: dict[str, TestAccount]
    recorder: str
    recording_id: str
    token_id: str
    item_id: int
    seen: list[Exchange] = field(default_factory=list)

    def client(self) -> httpx.Client:
        seen = self.seen

        def record(request: httpx.Request, response: httpx.Response, body: bytes) -> None:
            seen.append(Exchange(str(request.url), response.status_code, response.headers, body))

        transport = PortalTransport(self.app, self.portal, on_exchange=record)
        return httpx.Client(transport=transport, base_url=BASE)

    def person(self, name: str) -> tuple[httpx.Client, str]:
        """A client signed in through the pages; returns it and its CSRF token."""
        self.clock.advance(seconds=30)  # a fresh TOTP step for every sign-in
        account = self.people[name]
        client = self.client()
        form = form_token(client)
        login = {"csrf": form, "username": account.username, "password": account.password}
        assert client.post("/signin", data=login).status_code == 303
        done = client.post(
            "/signin/code", data={"csrf": form, **account.second_factor(self.clock.now())}
        )
        assert done.status_code == 303 and not done.headers["location"].startswith("/signin")
        return client, client.cookies[CSRF_COOKIE]

    def audit_size(self) -> int:
        with self.vault.store.transaction() as tx:
            size, _ = tx.audit_head()
        return size

    def actions_since(self, size: int) -> list[str]:
        from callvault.core.audit import AuditEvent

        return [
            str(AuditEvent.from_canonical(r.body).action)
            for r in self.vault.store.iter_audit(size, self.audit_size())
        ]


def form_token(client: httpx.Client) -> str:
    page = client.get("/signin")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "the sign-in page has no form token"
    return found.group(1)


@pytest.fixture(scope="module")
def logs() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, logs: Captured) -> Iterator[World]:
    root = tmp_path_factory.mktemp("websweep")
    clock = FakeClock(T0)
    vault = open_test_vault(root, clock)
    try:
        with cheap_password_hashing(), anyio.from_thread.start_blocking_portal() as portal:
            people = {
                name: enrolled_account(vault, name, role=role, care_units=units)
                for name, role, units in (
                    ("boss.a", "supervisor", ["unit-a"]),
                    ("boss.b", "supervisor", ["unit-b"]),
                    ("nurse.b", "call_handler", ["unit-b"]),
                    ("admin.x", "administrator", []),
                    ("rev.x", "log_reviewer", []),
                    ("priv.x", "privacy_officer", []),
                )
            }
            recording = plant_call(vault, root)
            recorder = recorder_token(vault, "rec-a", "unit-a")
            [token] = tokens.list_tokens(vault, OPERATOR)
            # An emergency access queues a review item to resolve.
            nurse = Principal("nurse.b", Role.CALL_HANDLER, "unit-b", session="s1")
            emergency.open_emergency(vault, nurse, REASON, ["unit-b"], dt.timedelta(minutes=30))
            [item] = review.list_items(vault, OPERATOR)
            app = create_app(vault)
            yield World(
                vault, clock, app, portal, people, recorder, str(recording), str(token.id), item.id
            )
    finally:
        vault.close()


def plant_call(vault: Vault, root: Path) -> uuid.UUID:
    audio = root / "planted.wav"
    make_tone_wav(audio, 4.0)
    details = CallDetails.parse(
        care_unit="unit-a",
        started_at=T0 - dt.timedelta(hours=1),
        today=T0.date(),
        caller=PHONE,
        personnummer=PNR,
        agent="boss.a",
        call_id=CALL_ID,
    )
    try:
        return ingest.ingest(vault, OPERATOR, audio, details).recording_id
    finally:
        audio.unlink()


# --- what the application has --------------------------------------------------------------


def web_calls(app: Any) -> list[Call]:
    """Every (method, path) of the pages: outside /api and /healthz; sign-out last."""
    calls = []
    for context in iter_route_contexts(app.routes):
        path = context.path
        if path.startswith("/api") or path == "/healthz":
            continue
        params = tuple(getattr(context.original_route, "param_convertors", {}))
        calls += [Call(m, path, params) for m in sorted(context.methods or ()) if m != "HEAD"]
    return sorted(calls, key=lambda c: c.key == SIGNOUT)


def session_calls(world: World) -> list[Call]:
    return [c for c in web_calls(world.app) if c.key not in OPEN | BEFORE_SIGN_IN]


def fill(world: World, text: str) -> str:
    values = {
        "recording_id": world.recording_id,
        "item_id": str(world.item_id),
        "token_id": world.token_id,
        "name:path": "app.css",
        "token": "x" * 43,  # a prepared copy's one-time name: none such
    }
    for name, value in values.items():
        text = text.replace(f"{{{name}}}", value)
    return text


def send(
    world: World,
    client: httpx.Client,
    call: Call,
    csrf: str | None,
    form: dict[str, str] | None = None,
) -> httpx.Response:
    url = fill(world, call.template)
    if call.method == "GET":
        return client.get(url)
    assert call.method == "POST", f"{call}: the sweep knows GET and POST pages only"
    assert call.key in FORMS or call.key in BEFORE_SIGN_IN, f"{call}: add its form to FORMS"
    data = {
        k: fill(world, v)
        for k, v in (form if form is not None else FORMS.get(call.key, {})).items()
    }
    if csrf is not None:
        data["csrf"] = csrf
    return client.post(url, data=data)


def recording_data(world: World) -> list[bytes]:
    rid = uuid.UUID(world.recording_id)
    return [*NEEDLES, str(rid).encode(), rid.hex.encode(), CALL_ID.encode()]


def assert_nothing_of_the_recording(world: World, call: Call, response: httpx.Response) -> None:
    # The page's own address (in its language links) is what the caller typed, not data.
    body = response.content.replace(fill(world, call.template).encode(), b"")
    found = [n for n in recording_data(world) if n in body]
    assert not found, f"{call} answered {response.status_code} with recording data {found}"


def assert_sent_to_sign_in(call: Call, response: httpx.Response, expired: bool = False) -> None:
    if call.key in SCRIPTED:
        assert response.status_code == 401, f"{call}: {response.status_code}"
        return
    assert response.status_code == 303, f"{call}: {response.status_code}"
    location = response.headers["location"]
    if call.key == SIGNOUT:
        assert location.startswith("/signin?m="), f"{call}: {location}"
    else:
        assert location == ("/signin?m=expired" if expired else "/signin"), f"{call}: {location}"


# --- the sweep -------------------------------------------------------------------------------


def test_every_page_is_classified_and_has_what_the_sweep_needs(world):
    calls = web_calls(world.app)
    keys = {c.key for c in calls}
    assert OPEN | BEFORE_SIGN_IN | {SIGNOUT} <= keys, "a page the sweep expects is gone"
    assert {("GET", "/audit"), ("GET", "/review"), ("GET", "/admin/users")} <= keys
    for call in calls:
        if call.method == "POST" and call.key not in BEFORE_SIGN_IN:
            assert call.key in FORMS, f"{call}: add its form to FORMS"
        assert set(call.params) <= {"recording_id", "item_id", "token_id", "name", "token"}, call


def test_without_a_session_every_page_sends_to_sign_in_and_open_pages_show_no_data(world):
    client = world.client()
    for call in web_calls(world.app):
        if call.key in BEFORE_SIGN_IN:
            continue  # the form token test below
        response = send(world, client, call, csrf=None)
        assert_nothing_of_the_recording(world, call, response)
        if call.key in OPEN:
            assert response.status_code in (200, 303), f"{call}: {response.status_code}"
            if response.status_code == 303:
                assert response.headers["location"].startswith("/"), call  # local only
        else:
            assert_sent_to_sign_in(call, response)


def test_a_recorder_token_opens_no_page(world):
    """R11: pages are for browser sessions; a bearer token is not a session."""
    client = world.client()
    client.headers["Authorization"] = f"Bearer {world.recorder}"
    for call in session_calls(world):
        response = send(world, client, call, csrf="anything")
        assert_nothing_of_the_recording(world, call, response)
        assert_sent_to_sign_in(call, response)


@pytest.mark.parametrize("outsider", ["nurse.b", "boss.b"])
def test_people_of_another_care_unit_get_nothing_of_the_recording(world, outsider):
    """R1/R2: with a valid session and CSRF token, every page and form, no data."""
    client, csrf = world.person(outsider)
    size = world.audit_size()
    for call in session_calls(world):
        response = send(world, client, call, csrf)
        assert_nothing_of_the_recording(world, call, response)
        assert response.status_code < 500, f"{call}: {response.status_code}"
        if call.template.startswith(STAFF_PAGES):
            assert response.status_code == 403, f"{call}: {response.status_code}"
        if call.key in AUDIO_PAGES:
            assert response.status_code in (403, 404), f"{call}: {response.status_code}"
    # Nothing done for them: no account, unit, token, policy, hold, erasure or report.
    changes = {"user:create", "user:reset", "user:disable", "unit:create", "token:create",
               "token:revoke", "policy:change", "review:resolve", "recording:play",
               "recording:download", "recording:hold", "recording:release", "subject:erase",
               "subject:export", "audit:extract", "breach:report"}  # fmt: skip
    assert changes.isdisjoint(world.actions_since(size))


def test_an_administrator_gets_no_audio_and_no_recording_data(world):
    """R9: administrators manage people and keys; they never hear a call."""
    client, csrf = world.person("admin.x")
    calls = [c for c in session_calls(world) if c.key in AUDIO_PAGES]
    assert len(calls) == len(AUDIO_PAGES)
    for call in calls:
        response = send(world, client, call, csrf)
        assert response.status_code in (403, 404), f"{call}: {response.status_code}"
        assert_nothing_of_the_recording(world, call, response)
        assert b'id="play-button"' not in response.content and b"<audio" not in response.content
    audio = client.get(f"/api/v1/recordings/{world.recording_id}/audio")
    assert audio.status_code == 403 and not audio.content.startswith(b"RIFF")


def owner_of(call: Call) -> str:
    """Someone whose role could use the page: the CSRF token alone must stop them."""
    if call.template.startswith("/admin"):
        return "admin.x"
    if call.template.startswith(("/audit", "/review")):
        return "rev.x"
    if call.template.startswith("/privacy"):
        return "priv.x"
    return "boss.a"


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(world, token):
    clients: dict[str, tuple[httpx.Client, str]] = {}
    for call in session_calls(world):
        if call.method != "POST" or call.key == SIGNOUT:
            continue
        name = owner_of(call)
        if name not in clients:
            clients[name] = world.person(name)
        client, _csrf = clients[name]
        size = world.audit_size()
        response = send(world, client, call, csrf=token)
        assert response.status_code == 403, f"{call} as {name}: {response.status_code}"
        assert set(world.actions_since(size)) <= {"access:denied"}, f"{call} changed something"
        assert_nothing_of_the_recording(world, call, response)
    # The sessions are intact: the refusals ended nothing.
    for client, _csrf in clients.values():
        assert client.get("/keepalive").status_code == 204


def test_forms_before_sign_in_need_the_form_token(world):
    client = world.client()
    account = world.people["boss.a"]
    for call in web_calls(world.app):
        if call.key not in BEFORE_SIGN_IN:
            continue
        data = {"username": account.username, "password": account.password, "token": "x"}
        response = client.post(call.template, data=data)
        assert response.status_code == 403, f"{call}: {response.status_code}"
        assert "__Host-cv_session" not in response.headers.get("set-cookie", "")


def revived(world: World, cookies: dict[str, str]) -> httpx.Client:
    """A new client holding a session's cookies (an answer may have cleared the old one's)."""
    client = world.client()
    client.headers["cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    return client


def test_a_signout_without_its_token_ends_nothing_server_side(world):
    client, csrf = world.person("boss.a")
    cookies = {SESSION_COOKIE: client.cookies[SESSION_COOKIE], CSRF_COOKIE: csrf}
    response = client.post("/signout", data={})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin?m=")
    assert revived(world, cookies).get("/keepalive").status_code == 204


def test_a_signed_out_session_opens_no_page(world):
    """R7: cookies kept after signing out (a copied cookie, say) are worth nothing."""
    client, csrf = world.person("boss.a")
    cookies = {SESSION_COOKIE: client.cookies[SESSION_COOKIE], CSRF_COOKIE: csrf}
    assert client.post("/signout", data={"csrf": csrf}).status_code == 303
    for call in session_calls(world):
        response = send(world, revived(world, cookies), call, csrf)
        assert_nothing_of_the_recording(world, call, response)
        assert_sent_to_sign_in(call, response, expired=True)


def test_an_expired_session_opens_no_page_and_says_it_ended(world):
    """R7: after 15 idle minutes every page sends back to sign-in with the notice."""
    client, csrf = world.person("boss.a")
    cookies = {SESSION_COOKIE: client.cookies[SESSION_COOKIE], CSRF_COOKIE: csrf}
    assert revived(world, cookies).get("/search").status_code == 200
    world.clock.advance(minutes=16)
    for call in session_calls(world):
        response = send(world, revived(world, cookies), call, csrf)
        assert_nothing_of_the_recording(world, call, response)
        assert_sent_to_sign_in(call, response, expired=True)


def test_planted_identifiers_never_reach_an_address_a_header_or_a_log_line(world, logs):
    """R3: legitimate and refused uses of the identifiers, then everything is searched."""
    boss, csrf = world.person("boss.a")
    found = boss.post("/search", data={"csrf": csrf, "who": PHONE})
    assert world.recording_id in found.text  # the search works, so the check means something
    boss.post("/search", data={"csrf": csrf, "who": PNR})
    page = boss.get(f"/recordings/{world.recording_id}")
    assert page.status_code == 200
    boss.post(
        f"/recordings/{world.recording_id}/play",
        data={"csrf": csrf, "reason_code": "other", "reason": f"ringde {PHONE}"},
    )
    boss.post(
        f"/recordings/{world.recording_id}/play", data={"csrf": csrf, "reason_code": "callback"}
    )
    boss.get(f"/audit?recording={PNR}")
    reviewer, rcsrf = world.person("rev.x")
    reviewer.post("/audit", data={"csrf": rcsrf, "actor": PHONE, "recording": PNR})
    reviewer.post("/audit", data={"csrf": rcsrf, "recording": world.recording_id})
    reviewer.post(
        f"/review/{world.item_id}/resolve",
        data={"csrf": rcsrf, "outcome": "ok", "comment": f"pnr {PNR}"},
    )
    reviewer.get(f"/audit?recording={PHONE}")
    admin, acsrf = world.person("admin.x")
    admin.post(
        "/admin/users",
        data={"csrf": acsrf, "username": PNR, "role": "supervisor", "care_units": "unit-a"},
    )
    admin.post(
        "/admin/users",
        data={
            "csrf": acsrf,
            "username": "x" + PHONE_E164,
            "role": "supervisor",
            "care_units": "unit-a",
        },
    )
    admin.post("/admin/tokens", data={"csrf": acsrf, "name": PHONE, "care_unit": "unit-a"})
    admin.post("/admin/units", data={"csrf": acsrf, "unit_id": PNR, "name": PHONE})
    admin.post(
        "/admin/policies",
        data={
            "csrf": acsrf,
            "care_unit": "unit-a",
            "retention_class": "quality",
            "purpose": f"för {PNR}",
            "legal_basis": "x",
        },
    )

    problems = []
    typed = list(NEEDLES)
    for exchange in world.seen:
        for name, value in exchange.headers.multi_items():
            if any(n.decode("latin-1") in value for n in typed):
                problems.append(f"{exchange.url}: header {name}")
        if exchange.headers.get("content-type", "").startswith("text/html"):
            for link in re.findall(rb'(?:href|action|src)="([^"]*)"', exchange.body):
                if any(n in link for n in typed):
                    problems.append(f"{exchange.url}: links to {link[:40]!r}")
    for line in logs.lines:
        if any(n.decode("latin-1") in line for n in typed):
            problems.append(f"log line: {line[:80]}")
    assert problems == []
    assert logs.lines, "no log line was captured: the check would mean nothing"
