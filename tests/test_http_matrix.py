"""R8-R11 over HTTP: every role against every action, with the answers the policy gives.

The same policy as ``tests/test_access.py`` and docs/access.md, seen from the
outside: each row is one person (or the recorder's token) and the recording
they aim at; each column one request.  A search either finds the recording,
answers without it (``hidden``: it is filtered row by row) or is refused.  A
recording the caller may not even view answers 404, like one that does not
exist; a role that never does the thing answers 403.  Then emergency access
(R10): it opens view and play beyond one's units, flagged and queued for
review, never download, and ends after its time box.

The accounts and recordings are made once for the module.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import anyio.from_thread
import httpx
import pytest
from anyio.from_thread import BlockingPortal

from callvault.adapters.audio import analyse
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.core.access import Principal, Role
from callvault.core.audit import Action, AuditEvent
from callvault.entrypoints.http.app import create_app
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

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
OPERATOR = Principal("tester", Role.OPERATOR)
BASE = "https://testserver"
API = "/api/v1"
REASON = {"reason": "Caller rang back about the earlier advice"}

PEOPLE = {
    "nurse.a": ("call_handler", ["unit-a"]),
    "boss.a": ("supervisor", ["unit-a"]),
    "nurse.b": ("call_handler", ["unit-b"]),
    "boss.b": ("supervisor", ["unit-b"]),
    "reviewer": ("log_reviewer", []),
    "privacy": ("privacy_officer", []),
    "admin": ("administrator", []),
}
# recording -> (care unit, the call handler who took it)
RECORDINGS = {
    "own": ("unit-a", "nurse.a"),
    "colleague": ("unit-a", "nurse.c"),
    "foreign": ("unit-b", "nurse.b"),
}

# Columns: search (POST body, by call id), list (GET by care unit), view, play
# (open a grant), audio (a range), dlopen and dl (download grant and copy), audit
# (read the log), verify (the log), user (create an account).
MATRIX = """
case                who       recording  search list   view play audio dlopen dl  audit verify user
handler_own         nurse.a   own        found  found  200  200  206   403    403 403   403    403
handler_colleague   nurse.a   colleague  hidden hidden 404  404  404   403    403 403   403    403
handler_other_unit  nurse.a   foreign    hidden 403    404  404  404   403    403 403   403    403
supervisor_own      boss.a    colleague  found  found  200  200  206   200    200 403   403    403
supervisor_other    boss.a    foreign    hidden 403    404  404  404   404    404 403   403    403
log_reviewer        reviewer  own        403    403    403  403  403   403    403 200   200    403
privacy_officer     privacy   own        found  found  200  403  403   403    403 200   200    403
administrator       admin     own        403    403    403  403  403   403    403 403   403    201
recorder            recorder  own        403    403    403  403  403   403    403 403   403    403
"""


def parse_matrix(text: str) -> dict[str, tuple[str, str, dict[str, str]]]:
    header, *lines = text.strip().splitlines()
    columns = header.split()[3:]
    cases = {}
    for line in lines:
        case, who, recording, *cells = line.split()
        assert len(cells) == len(columns), line
        cases[case] = (who, recording, dict(zip(columns, cells, strict=True)))
    return cases


CASES = parse_matrix(MATRIX)


@dataclass
class World:
    vault: Vault
    clock: FakeClock
    portal: BlockingPortal
    people: dict[str, TestAccount]
    recorders: dict[str, str]  # care unit -> bearer token
    ids: dict[str, str]  # recording label -> id
    audio: dict[str, bytes]

    def client(self) -> httpx.Client:
        transport = PortalTransport(create_app(self.vault), self.portal)
        return httpx.Client(transport=transport, base_url=BASE)

    def as_(self, who: str) -> httpx.Client:
        client = self.client()
        if who == "recorder":
            client.headers["Authorization"] = f"Bearer {self.recorders['unit-a']}"
            return client
        sign_in(client, self.vault, self.people[who])
        self.clock.advance(seconds=30)  # a fresh TOTP step for the next sign-in
        return client

    def log_head(self) -> int:
        with self.vault.store.transaction() as tx:
            return tx.audit_head()[0]

    def log_since(self, seq: int) -> list[AuditEvent]:
        return [AuditEvent.from_canonical(r.body) for r in self.vault.store.iter_audit(seq)]


def noise_wav(size: int, seed: int) -> bytes:
    data = (size - 44) // 2 * 2
    header = wav_header(sample_rate=8000, channels=1, data_size=data)
    return header + random.Random(seed).randbytes(data)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("matrix")
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
                for name, (role, units) in PEOPLE.items()
            }
            recorders = {u: recorder_token(vault, f"rec-{u}", u) for u in ("unit-a", "unit-b")}
            w = World(vault, clock, portal, people, recorders, {}, {})
            for seed, (label, (unit, agent)) in enumerate(RECORDINGS.items()):
                w.audio[label] = noise_wav(5_000 + seed, seed)
                w.ids[label] = ingest(w, unit, agent, f"matrix-{label}", w.audio[label])
            yield w
    finally:
        vault.close()


def ingest(world: World, unit: str, agent: str, call_id: str, audio: bytes) -> str:
    client = world.client()
    client.headers["Authorization"] = f"Bearer {world.recorders[unit]}"
    form = {"call_id": call_id, "started_at": "2026-03-01T10:22:00+01:00", "agent": agent}
    response = client.post(f"{API}/recordings", data=form, files={"audio": ("a.wav", audio)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def found(response: httpx.Response, rid: str) -> str:
    """``found``/``hidden`` for a search answer, else its status."""
    if response.status_code != 200:
        return str(response.status_code)
    return "found" if rid in {i["id"] for i in response.json()["items"]} else "hidden"


def act(world: World, client: httpx.Client, recording: str) -> dict[str, str]:
    """Every action of the matrix, in order (a grant before its audio), as answered."""
    rid, (unit, _) = world.ids[recording], RECORDINGS[recording]
    call_id = f"matrix-{recording}"
    url = f"{API}/recordings/{rid}"
    done = {
        "search": found(client.post(f"{API}/recordings/search", json={"call_id": call_id}), rid),
        "list": found(client.get(f"{API}/recordings", params={"care_unit": unit}), rid),
        "view": str(client.get(url).status_code),
        "play": str(client.post(f"{url}/playback", json=REASON).status_code),
    }
    audio = client.get(f"{url}/audio", headers={"Range": "bytes=0-99"})
    done["audio"] = str(audio.status_code)
    if audio.status_code == 206:
        assert audio.content == world.audio[recording][:100]
    done["dlopen"] = str(client.post(f"{url}/download", json=REASON).status_code)
    copy = client.get(f"{url}/download")
    done["dl"] = str(copy.status_code)
    if copy.status_code == 200:
        assert copy.content == world.audio[recording]
    done["audit"] = str(client.get(f"{API}/audit", params={"limit": 5}).status_code)
    done["verify"] = str(client.get(f"{API}/audit/verify").status_code)
    letters = "".join(random.choices("abcdefghijklmnopqrstuvwxyz", k=8))
    new_user = {"username": f"made.{letters}", "role": "log_reviewer"}
    done["user"] = str(client.post(f"{API}/users", json=new_user).status_code)
    return done


@pytest.mark.parametrize("case", list(CASES))
def test_each_role_gets_exactly_what_the_policy_allows(world: World, case: str) -> None:
    who, recording, expected = CASES[case]
    answered = act(world, world.as_(who), recording)
    wrong = {k: f"{answered[k]} (policy: {v})" for k, v in expected.items() if answered[k] != v}
    assert not wrong, wrong


def test_the_matrix_covers_every_role_that_signs_in_or_ingests() -> None:
    roles = {PEOPLE[who][0] if who != "recorder" else "recorder" for who, _, _ in CASES.values()}
    assert roles == {str(r) for r in Role} - {"operator"}


# --- emergency access (R10) -----------------------------------------------------------------


def open_emergency(client: httpx.Client, units: list[str] | str, minutes: int) -> httpx.Response:
    reason = "Caller rang back, their earlier call was taken by another unit"
    body = {"reason": reason, "care_units": units, "duration_minutes": minutes}
    return client.post(f"{API}/emergency", json=body)


def test_emergency_access_opens_view_and_play_flagged_reviewed_and_time_boxed(
    world: World,
) -> None:
    rid = world.ids["own"]  # unit-a; nurse.b belongs to unit-b
    url = f"{API}/recordings/{rid}"
    search = {"call_id": "matrix-own"}
    nurse = world.as_("nurse.b")
    assert nurse.get(url).status_code == 404
    assert nurse.post(f"{url}/playback", json=REASON).status_code == 404
    head = world.log_head()

    opened = open_emergency(nurse, ["unit-a"], 240)
    assert opened.status_code == 200, opened.text
    expires = dt.datetime.fromisoformat(opened.json()["expires_at"])
    assert expires - dt.datetime.fromisoformat(opened.json()["opened_at"]) == dt.timedelta(hours=4)
    assert found(nurse.post(f"{API}/recordings/search", json=search), rid) == "found"
    assert nurse.get(url).status_code == 200
    grant = nurse.post(f"{url}/playback", json=REASON)
    assert grant.status_code == 200 and grant.json()["emergency"] is True
    audio = nurse.get(f"{url}/audio")
    assert audio.status_code == 200 and audio.content == world.audio["own"]
    assert nurse.post(f"{url}/download", json=REASON).status_code == 403

    entries = {e.action: e for e in world.log_since(head) if e.actor == "nurse.b"}
    for action in (
        Action.ACCESS_EMERGENCY,
        Action.RECORDING_SEARCH,
        Action.RECORDING_VIEW,
        Action.RECORDING_PLAY,
    ):
        assert entries[action].detail.get("emergency") is True, action
    with world.vault.store.transaction() as tx:
        queued = {i.kind for i in tx.grants.open_review_items(actor="nurse.b")}
    assert {"emergency_access", "emergency_play"} <= queued

    # Just before the end it still holds; at the end it is gone.
    world.clock.time = expires - dt.timedelta(minutes=5)
    late = world.as_("nurse.b")
    assert late.get(url).status_code == 200
    world.clock.time = expires
    assert late.get(url).status_code == 404
    assert late.post(f"{url}/playback", json=REASON).status_code == 404
    assert late.get(f"{url}/audio").status_code == 404
    assert found(late.post(f"{API}/recordings/search", json=search), rid) == "hidden"


def test_emergency_access_never_extends_download(world: World) -> None:
    rid = world.ids["colleague"]  # unit-a; boss.b supervises unit-b and downloads there
    url = f"{API}/recordings/{rid}"
    boss = world.as_("boss.b")
    assert boss.post(f"{url}/download", json=REASON).status_code == 404
    assert open_emergency(boss, "any", 30).status_code == 200
    assert boss.get(url).status_code == 200
    assert boss.post(f"{url}/playback", json=REASON).status_code == 200
    assert boss.post(f"{url}/download", json=REASON).status_code == 403
    assert boss.get(f"{url}/download").status_code == 403
    foreign = f"{API}/recordings/{world.ids['foreign']}"  # boss.b's own unit: still allowed
    assert boss.post(f"{foreign}/download", json=REASON).status_code == 200


@pytest.mark.parametrize("who", ["reviewer", "privacy", "admin", "recorder"])
def test_roles_without_audio_cannot_open_emergency_access(world: World, who: str) -> None:
    client = world.as_(who)
    head = world.log_head()
    response = open_emergency(client, "any", 30)
    assert response.status_code == 403 and response.json()["error"] == "access_denied"
    [entry] = world.log_since(head)
    assert entry.action == Action.ACCESS_DENIED
