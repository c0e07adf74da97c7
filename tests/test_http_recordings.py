"""Recordings and the audit log over HTTP, in process against ``create_app``.

Range correctness as a property (random ranges of random recordings equal
the original bytes), malformed ranges that leak nothing, write-only recorder
tokens (R11), streamed ingest that refuses cleanly (R27), purpose-bound
playback and download (R9, R15), search without identifiers in URLs (R3)
and the log reviewer's routes.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio.from_thread
import httpx
import pytest
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callvault.adapters.audio import analyse
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.core.access import Principal, Role
from callvault.core.audit import Action, AuditEvent
from callvault.entrypoints.http.app import create_app
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.testing.audio import make_tone_wav, wav_header
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
PHONE, PNR = "070-174 06 05", "19121212-1212"
PHONE_DIGITS, PNR_DIGITS = "701740605", "191212121212"
# Plaintext sizes around the cv1 segment borders (65480 bytes in the first
# segment, 65520 in every later one) and one of several segments.
SIZES = (1_000, 65_480, 65_481, 131_000, 131_001, 250_000)


@dataclass
class Service:
    vault: Vault
    clock: FakeClock
    tmp: Path
    accounts: dict[str, TestAccount]
    recorder: str  # bearer token of unit-a's recorder
    portal: BlockingPortal

    def client(self) -> httpx.Client:
        return httpx.Client(
            transport=PortalTransport(create_app(self.vault), self.portal, chunk=65536),
            base_url=BASE,
        )

    def person(self, name: str) -> httpx.Client:
        client = self.client()
        sign_in(client, self.vault, self.accounts[name])
        self.clock.advance(seconds=30)  # a fresh TOTP step for the next sign-in
        return client

    def recorder_client(self) -> httpx.Client:
        client = self.client()
        client.headers["Authorization"] = f"Bearer {self.recorder}"
        return client


def random_wav(size: int, seed: int) -> bytes:
    """A valid 8 kHz 16-bit mono WAV of exactly ``size`` bytes, filled with noise."""
    data = (size - 44) // 2 * 2
    noise = random.Random(seed).randbytes(data)
    body = wav_header(sample_rate=8000, channels=1, data_size=data) + noise
    return body + b"\x00" * (size - len(body))  # an odd size ends in the RIFF pad byte


def upload(
    client: httpx.Client, audio: bytes, call_id: str, **fields: str
) -> tuple[int, dict[str, object]]:
    form = {"call_id": call_id, "started_at": "2026-03-01T10:22:00+01:00", **fields}
    response = client.post(
        f"{API}/recordings", data=form, files={"audio": ("call-0701740605.wav", audio)}
    )
    return response.status_code, response.json()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    (tmp_path / "keys").mkdir(mode=0o700)
    (tmp_path / "data").mkdir(mode=0o700)
    keys = KeyfileProvider.create(
        tmp_path / "keys" / "k", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
    )
    clock = FakeClock(T0)
    vault = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{tmp_path / 'data' / 'vault.db'}"),
        blobs=open_blobstore((tmp_path / "blobs").as_uri()),
        keys=keys,
        clock=clock,
        probe=analyse,
        origin=vault_service.origin_for(str(uuid.uuid4())),
        max_ingest_bytes=4 * 1024 * 1024,
    )
    try:
        vault_service.initialise(vault, OPERATOR)
        with cheap_password_hashing():
            people = {
                "nurse.a": ("call_handler", ["unit-a"]),
                "nurse.b": ("call_handler", ["unit-b"]),
                "boss.a": ("supervisor", ["unit-a"]),
                "reviewer.r": ("log_reviewer", []),
            }
            accounts = {
                name: enrolled_account(vault, name, role=role, care_units=units)
                for name, (role, units) in people.items()
            }
            token = recorder_token(vault, "rec-a", "unit-a")
            with anyio.from_thread.start_blocking_portal() as portal:
                yield Service(vault, clock, tmp_path, accounts, token, portal)
    finally:
        vault.close()


def stored_state(service: Service) -> tuple[int, list[str]]:
    """Recording rows (any state) and stored objects."""
    rows = sum(1 for _ in service.vault.store.iter_recordings())
    return rows, sorted(service.vault.blobs.names())


def log_since(service: Service, seq: int) -> list[AuditEvent]:
    return [AuditEvent.from_canonical(r.body) for r in service.vault.store.iter_audit(seq)]


def log_size(service: Service) -> int:
    with service.vault.store.transaction() as tx:
        return tx.audit_head()[0]


# --- range correctness --------------------------------------------------------------------


@pytest.fixture
def library(service: Service) -> tuple[Service, httpx.Client, dict[str, bytes]]:
    """Random recordings of awkward sizes, stored through the API, each with a grant."""
    recorder = service.recorder_client()
    originals: dict[str, bytes] = {}
    for seed, size in enumerate(SIZES):
        audio = random_wav(size, seed)
        status, body = upload(recorder, audio, f"call-{seed}", agent="nurse.a")
        assert status == 201, body
        originals[str(body["id"])] = audio
    nurse = service.person("nurse.a")
    for rid in originals:
        assert nurse.post(f"{API}/recordings/{rid}/playback", json=REASON).status_code == 200
    return service, nurse, originals


@st.composite
def ranges(draw: st.DrawFn, count: int) -> tuple[int, str, slice]:
    which = draw(st.integers(0, count - 1))
    size = SIZES[which]
    kind = draw(st.sampled_from(["closed", "open", "suffix"]))
    if kind == "suffix":
        n = draw(st.integers(1, size + 10))
        return which, f"bytes=-{n}", slice(max(size - n, 0), size)
    first = draw(st.integers(0, size - 1))
    if kind == "open":
        return which, f"bytes={first}-", slice(first, size)
    last = draw(st.integers(first, size + 10))
    return which, f"bytes={first}-{last}", slice(first, min(last + 1, size))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=ranges(len(SIZES)))
def test_random_ranges_of_random_recordings_equal_the_original_bytes(
    library: tuple[Service, httpx.Client, dict[str, bytes]], case: tuple[int, str, slice]
) -> None:
    _, nurse, originals = library
    which, header, cut = case
    rid, original = list(originals.items())[which]
    response = nurse.get(f"{API}/recordings/{rid}/audio", headers={"Range": header})
    assert response.status_code == 206
    assert response.content == original[cut]
    assert response.headers["content-range"] == f"bytes {cut.start}-{cut.stop - 1}/{len(original)}"
    assert response.headers["content-length"] == str(cut.stop - cut.start)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["cache-control"] == "no-store"


def test_the_whole_recording_without_a_range(library: tuple[Service, httpx.Client, dict]) -> None:
    _, nurse, originals = library
    for rid, original in originals.items():
        response = nurse.get(f"{API}/recordings/{rid}/audio")
        assert response.status_code == 200 and response.content == original
        assert response.headers["accept-ranges"] == "bytes"
        assert response.headers["content-length"] == str(len(original))


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("bytes=5-2", 400),
        ("bytes=abc", 400),
        ("items=0-1", 400),
        ("bytes=0-1,3-4", 416),
        ("bytes=" + "9" * 30 + "-", 416),
        ("bytes=250000-", 416),
        ("bytes=-0", 416),
    ],
)
def test_malformed_and_unsatisfiable_ranges_leak_nothing(
    library: tuple[Service, httpx.Client, dict], header: str, status: int
) -> None:
    _, nurse, originals = library
    rid = next(r for r, a in originals.items() if len(a) == 250_000)
    response = nurse.get(f"{API}/recordings/{rid}/audio", headers={"Range": header})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error", "message"}
    assert b"RIFF" not in response.content and len(response.content) < 200
    if status == 416:
        assert response.headers["content-range"] == "bytes */250000"


def test_two_range_header_fields_are_malformed(library: tuple[Service, httpx.Client, dict]) -> None:
    _, nurse, originals = library
    rid = next(iter(originals))
    response = nurse.get(
        f"{API}/recordings/{rid}/audio", headers=[("Range", "bytes=0-1"), ("Range", "bytes=2-3")]
    )
    assert response.status_code == 400 and b"RIFF" not in response.content


# --- write-only recorder tokens (R11) -----------------------------------------------------


def test_a_recorder_token_can_ingest_but_every_read_answers_403(service: Service) -> None:
    recorder = service.recorder_client()
    status, body = upload(recorder, random_wav(2000, 1), "call-1")
    assert status == 201
    rid = body["id"]
    for method, path, payload in (
        ("GET", f"{API}/recordings?care_unit=unit-a", None),
        ("GET", f"{API}/recordings?started_from=2026-01-01", None),
        ("POST", f"{API}/recordings/search", {"caller": PHONE}),
        ("GET", f"{API}/recordings/{rid}", None),
        ("GET", f"{API}/recordings/{uuid.uuid4()}", None),
        ("POST", f"{API}/recordings/{rid}/playback", REASON),
        ("GET", f"{API}/recordings/{rid}/audio", None),
        ("POST", f"{API}/recordings/{rid}/download", REASON),
        ("GET", f"{API}/recordings/{rid}/download", None),
        ("POST", f"{API}/emergency", {**REASON, "care_units": "any"}),
        ("GET", f"{API}/audit", None),
        ("GET", f"{API}/audit/verify", None),
    ):
        response = recorder.request(method, path, json=payload)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"] == "access_denied"
        assert "RIFF" not in response.text


def test_a_recorder_cannot_ingest_into_another_care_unit(service: Service) -> None:
    recorder = service.recorder_client()
    before = stored_state(service)
    status, body = upload(recorder, random_wav(2000, 2), "call-2", care_unit="unit-b")
    assert status == 403 and body["error"] == "access_denied"
    assert stored_state(service) == before


# --- streamed ingest (R27) ----------------------------------------------------------------


def test_an_upload_is_stored_decodable_and_nothing_is_spooled_to_disk(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = service.tmp / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    wav = make_tone_wav(service.tmp / "tone.wav", 60.0, rate=16000)  # ~1.9 MB
    audio = wav.read_bytes()
    wav.unlink()
    status, body = upload(
        service.recorder_client(), audio, "call-big", caller=PHONE, personnummer=PNR,
        agent="nurse.a",
    )  # fmt: skip
    assert status == 201 and body["duplicate"] is False
    assert abs(float(body["duration_seconds"]) - 60.0) < 0.01
    assert list(spool.iterdir()) == []
    nurse = service.person("nurse.a")
    shown = nurse.get(f"{API}/recordings/{body['id']}").json()
    assert (shown["caller"], shown["personnummer"]) == ("+46701740605", PNR_DIGITS)
    assert (shown["sample_rate"], shown["codec"], shown["size"]) == (16000, "pcm_s16le", len(audio))
    nurse.post(f"{API}/recordings/{body['id']}/playback", json=REASON)
    assert nurse.get(f"{API}/recordings/{body['id']}/audio").content == audio


def test_an_oversized_upload_is_413_and_leaves_no_trace(service: Service) -> None:
    service.vault.max_ingest_bytes = 100_000
    recorder = service.recorder_client()
    before, log_before = stored_state(service), log_size(service)
    status, body = upload(recorder, random_wav(300_000, 3), "call-3")
    assert status == 413 and body["error"] == "too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        boundary = b"--cvtest"
        yield boundary + b'\r\nContent-Disposition: form-data; name="call_id"\r\n\r\ncall-4\r\n'
        yield boundary + b'\r\nContent-Disposition: form-data; name="started_at"\r\n\r\n'
        yield b"2026-03-01T10:22:00+01:00\r\n"
        yield boundary + b'\r\nContent-Disposition: form-data; name="audio"; filename="a"\r\n\r\n'
        audio = random_wav(300_000, 4)
        for at in range(0, len(audio), 8192):
            yield audio[at : at + 8192]
        yield b"\r\n" + boundary + b"--\r\n"

    response = recorder.post(
        f"{API}/recordings",
        content=chunked(),
        headers={"Content-Type": "multipart/form-data; boundary=cvtest"},
    )
    assert response.status_code == 413
    assert stored_state(service) == before
    assert log_size(service) == log_before


@pytest.mark.parametrize(
    "audio",
    [
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
        wav_header(sample_rate=8000, channels=1, data_size=100_000) + b"\x00" * 1000,  # truncated
        b"RIFF\x24\x00\x00\x00WAVE" + os.urandom(5000),  # a RIFF name on garbage
        b"\xff\xfb" + os.urandom(20_000),  # an MPEG frame sync on garbage
        b"",
    ],
    ids=["pdf", "truncated-wav", "riff-garbage", "mpeg-garbage", "empty"],
)
def test_an_upload_that_is_not_audio_is_415_and_leaves_no_trace(
    service: Service, audio: bytes
) -> None:
    before, log_before = stored_state(service), log_size(service)
    status, body = upload(service.recorder_client(), audio, "call-5")
    assert status == 415 and body["error"] == "unsupported_audio"
    assert stored_state(service) == before
    assert log_size(service) == log_before


@pytest.mark.parametrize(
    ("form", "files"),
    [
        ({"started_at": "2026-03-01T10:22:00+01:00"}, {"audio": b"RIFF"}),  # no call id
        ({"call_id": "c-6"}, {"audio": b"RIFF"}),  # no time
        ({"call_id": "c-6", "started_at": "yesterday"}, {"audio": b"RIFF"}),
        ({"call_id": "c-6", "started_at": "2026-03-01T10:22:00+01:00", "notes": "x"}, {}),
        ({"call_id": "c-6", "started_at": "2026-03-01T10:22:00+01:00"}, {}),  # no audio
        (
            {"call_id": "c-6", "started_at": "2026-03-01T10:22:00+01:00"},
            {"audio": b"RIFF", "second": b"RIFF"},
        ),
    ],
    ids=["no-call-id", "no-time", "bad-time", "unknown-field", "no-audio", "two-files"],
)
def test_a_malformed_upload_is_400_and_leaves_no_trace(
    service: Service, form: dict[str, str], files: dict[str, bytes]
) -> None:
    before = stored_state(service)
    response = service.recorder_client().post(f"{API}/recordings", data=form, files=files or None)
    assert response.status_code == 400, response.text
    assert stored_state(service) == before


def test_fields_after_the_audio_part_are_refused(service: Service) -> None:
    boundary = "cvtest"
    audio = random_wav(2000, 7)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="a"\r\n\r\n'
        ).encode()
        + audio
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="call_id"\r\n\r\nc-7'
            f"\r\n--{boundary}--\r\n"
        ).encode()
    )
    before = stored_state(service)
    response = service.recorder_client().post(
        f"{API}/recordings",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 400
    assert stored_state(service) == before


def test_the_same_call_id_again_answers_the_stored_recording(service: Service) -> None:
    recorder = service.recorder_client()
    status, first = upload(recorder, random_wav(4000, 8), "call-8")
    assert status == 201
    before = log_size(service)
    status, again = upload(recorder, random_wav(6000, 9), "call-8")
    assert status == 200
    assert (again["id"], again["duplicate"]) == (first["id"], True)
    [entry] = log_since(service, before)
    assert entry.action == Action.RECORDING_INGEST and entry.detail == {"duplicate": True}
    assert stored_state(service)[0] == 1


# --- playback, download, metadata ---------------------------------------------------------


@pytest.fixture
def two_calls(service: Service) -> tuple[Service, str, str, bytes]:
    recorder = service.recorder_client()
    own_audio = random_wav(70_000, 10)
    _, own = upload(recorder, own_audio, "call-10", agent="nurse.a", caller=PHONE)
    _, other = upload(recorder, random_wav(5_000, 11), "call-11", agent="nurse.c", caller=PHONE)
    return service, str(own["id"]), str(other["id"]), own_audio


def test_playing_needs_a_grant_for_this_recording(two_calls: tuple) -> None:
    service, own, other, audio = two_calls
    boss = service.person("boss.a")
    assert boss.get(f"{API}/recordings/{own}/audio").status_code == 403
    assert boss.post(f"{API}/recordings/{other}/playback", json=REASON).status_code == 200
    refused = boss.get(f"{API}/recordings/{own}/audio", headers={"Range": "bytes=0-3"})
    assert refused.status_code == 403 and b"RIFF" not in refused.content
    assert boss.post(f"{API}/recordings/{own}/playback", json={"reason": " "}).status_code == 400
    grant = boss.post(f"{API}/recordings/{own}/playback", json=REASON)
    assert grant.status_code == 200 and grant.json()["url"] == f"{API}/recordings/{own}/audio"
    assert boss.get(f"{API}/recordings/{own}/audio").content == audio
    assert service.person("boss.a").get(f"{API}/recordings/{own}/audio").status_code == 403


def test_download_needs_the_download_permission(two_calls: tuple) -> None:
    service, own, _, audio = two_calls
    nurse, boss = service.person("nurse.a"), service.person("boss.a")
    assert nurse.post(f"{API}/recordings/{own}/download", json=REASON).status_code == 403
    assert nurse.get(f"{API}/recordings/{own}/download").status_code == 403
    assert boss.post(f"{API}/recordings/{own}/download", json=REASON).status_code == 200
    copy = boss.get(f"{API}/recordings/{own}/download")
    assert copy.status_code == 200 and copy.content == audio
    name = f"recording-{uuid.UUID(own).hex[:8]}.wav"
    assert copy.headers["content-disposition"] == f'attachment; filename="{name}"'
    assert boss.get(f"{API}/recordings/{own}/download").status_code == 403


def test_an_unreachable_recording_answers_exactly_like_an_unknown_one(two_calls: tuple) -> None:
    service, own, other, _ = two_calls
    nurse = service.person("nurse.a")
    before = log_size(service)
    hidden = nurse.get(f"{API}/recordings/{other}")
    unknown = nurse.get(f"{API}/recordings/{uuid.uuid4()}")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json() == unknown.json()
    actions = [e.action for e in log_since(service, before)]
    assert actions == [Action.ACCESS_DENIED, Action.RECORDING_VIEW]
    assert nurse.get(f"{API}/recordings/{own}").status_code == 200
    assert nurse.get(f"{API}/recordings/not-an-id").status_code == 400


def test_emergency_access_over_http_opens_a_reviewed_grant(two_calls: tuple) -> None:
    service, own, _, audio = two_calls
    outsider = service.person("nurse.b")
    assert outsider.post(f"{API}/recordings/{own}/playback", json=REASON).status_code == 404
    opened = outsider.post(
        f"{API}/emergency", json={**REASON, "care_units": ["unit-a"], "duration_minutes": 30}
    )
    assert opened.status_code == 200, opened.text
    assert opened.json()["care_units"] == ["unit-a"]
    grant = outsider.post(f"{API}/recordings/{own}/playback", json=REASON)
    assert grant.status_code == 200 and grant.json()["emergency"] is True
    assert outsider.get(f"{API}/recordings/{own}/audio").content == audio


# --- search -------------------------------------------------------------------------------


def test_search_shows_only_what_the_caller_may_see_and_pages(two_calls: tuple) -> None:
    service, own, other, _ = two_calls
    nurse, boss = service.person("nurse.a"), service.person("boss.a")
    by_phone = {"caller": PHONE}
    assert [
        i["id"] for i in nurse.post(f"{API}/recordings/search", json=by_phone).json()["items"]
    ] == [own]
    first = boss.post(f"{API}/recordings/search", json={**by_phone, "limit": 1}).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = boss.post(
        f"{API}/recordings/search", json={**by_phone, "limit": 1, "cursor": first["next_cursor"]}
    ).json()
    assert {first["items"][0]["id"], second["items"][0]["id"]} == {own, other}
    stolen = nurse.post(
        f"{API}/recordings/search", json={**by_phone, "cursor": first["next_cursor"]}
    )
    assert stolen.status_code == 400  # a cursor is bound to the session that got it
    listed = boss.get(
        f"{API}/recordings", params={"care_unit": "unit-a", "max_duration_seconds": 1}
    )
    assert [i["id"] for i in listed.json()["items"]] == [other]
    outside = service.person("nurse.b").get(f"{API}/recordings", params={"care_unit": "unit-a"})
    assert outside.status_code == 403


def test_identifiers_never_travel_in_a_url_and_never_reach_the_log(two_calls: tuple) -> None:
    service, *_ = two_calls
    boss = service.person("boss.a")
    before = log_size(service)
    refused = boss.get(f"{API}/recordings", params={"caller": PHONE})
    assert refused.status_code == 400 and PHONE_DIGITS not in refused.text
    found = boss.post(f"{API}/recordings/search", json={"caller": PHONE, "personnummer": PNR})
    assert found.status_code == 200
    entries = list(service.vault.store.iter_audit(before))
    assert [AuditEvent.from_canonical(r.body).action for r in entries] == [Action.RECORDING_SEARCH]
    for record in service.vault.store.iter_audit():
        assert PHONE_DIGITS.encode() not in record.body and PNR_DIGITS.encode() not in record.body


def test_a_search_without_any_criterion_lists_nothing(two_calls: tuple) -> None:
    service, *_ = two_calls
    response = service.person("boss.a").get(f"{API}/recordings")
    assert response.status_code == 400


# --- the audit log ------------------------------------------------------------------------


def test_a_log_reviewer_reads_filters_pages_and_verifies_the_log(two_calls: tuple) -> None:
    service, own, _, _ = two_calls
    boss = service.person("boss.a")
    boss.post(f"{API}/recordings/{own}/playback", json=REASON)
    reviewer = service.person("reviewer.r")
    plays = reviewer.get(f"{API}/audit", params={"action": "recording:play"}).json()
    [play] = plays["entries"]
    assert (play["actor"], play["recording_id"], play["reason"]) == (
        "boss.a",
        own,
        REASON["reason"],
    )
    by_actor = reviewer.get(f"{API}/audit", params={"actor": "boss.a", "limit": 1}).json()
    assert len(by_actor["entries"]) == 1 and by_actor["next_cursor"]
    older = reviewer.get(
        f"{API}/audit", params={"actor": "boss.a", "limit": 1, "cursor": by_actor["next_cursor"]}
    ).json()
    assert older["entries"][0]["seq"] < by_actor["entries"][0]["seq"]
    about = reviewer.get(f"{API}/audit", params={"recording_id": own}).json()["entries"]
    assert about and all(e["recording_id"] == own for e in about)
    in_a = reviewer.get(f"{API}/audit", params={"care_unit": "unit-a"}).json()["entries"]
    assert any(e["action"] == "recording:play" for e in in_a)
    assert all(e["care_unit"] == "unit-a" for e in in_a)
    in_b = reviewer.get(f"{API}/audit", params={"care_unit": "unit-b"}).json()["entries"]
    assert not any(e["recording_id"] == own for e in in_b)
    assert reviewer.get(f"{API}/audit", params={"care_unit": "no such/unit"}).status_code == 400
    assert reviewer.get(f"{API}/audit", params={"action": "no:such"}).status_code == 400
    verified = reviewer.get(f"{API}/audit/verify").json()
    assert verified["ok"] is True and verified["problems"] == []
    assert boss.get(f"{API}/audit").status_code == 403
    assert boss.get(f"{API}/audit/verify").status_code == 403


# --- the one-second play cache ----------------------------------------------------------------


def _playing(two_calls: tuple) -> tuple[Service, httpx.Client, str, bytes]:
    service, own, _, audio = two_calls
    nurse = service.person("nurse.a")
    assert nurse.post(f"{API}/recordings/{own}/playback", json=REASON).status_code == 200
    first = nurse.get(f"{API}/recordings/{own}/audio", headers={"Range": "bytes=0-99"})
    assert first.status_code == 206 and first.content == audio[:100]
    return service, nurse, own, audio


def _session_digest(client: httpx.Client) -> bytes:
    from callvault.entrypoints.http.deps import SESSION_COOKIE
    from callvault.services import credentials

    token = client.cookies.get(SESSION_COOKIE)
    assert token
    return credentials.digest(token)


def test_a_session_ended_elsewhere_stops_range_reads_within_one_second(two_calls: tuple) -> None:
    """Another node ending the session is seen here at most HOLD late, then refused."""
    service, nurse, own, audio = _playing(two_calls)
    with service.vault.store.transaction() as tx:
        assert tx.accounts.end_session(_session_digest(nurse), service.vault.now())
    # Within the second: served from this process's memory of the passed check.
    cached = nurse.get(f"{API}/recordings/{own}/audio", headers={"Range": "bytes=100-199"})
    assert cached.status_code == 206 and cached.content == audio[100:200]
    service.clock.advance(seconds=1.5)
    assert nurse.get(f"{API}/recordings/{own}/audio").status_code == 401


def test_a_logout_here_stops_range_reads_at_once(two_calls: tuple) -> None:
    _, nurse, own, _ = _playing(two_calls)
    assert nurse.post(f"{API}/auth/logout").status_code in (200, 204)
    refused = nurse.get(f"{API}/recordings/{own}/audio", headers={"Range": "bytes=0-99"})
    assert refused.status_code == 401 and b"RIFF" not in refused.content


def test_disabling_an_account_stops_its_range_reads_at_once(two_calls: tuple) -> None:
    from callvault.services import accounts

    service, nurse, own, _ = _playing(two_calls)
    accounts.disable_user(service.vault, Principal("admin", Role.ADMINISTRATOR), "nurse.a")
    assert nurse.get(f"{API}/recordings/{own}/audio").status_code == 401


def test_an_expired_grant_is_refused_on_the_next_range(two_calls: tuple) -> None:
    service, nurse, own, _ = _playing(two_calls)
    service.clock.advance(minutes=10, seconds=1)
    refused = nurse.get(f"{API}/recordings/{own}/audio", headers={"Range": "bytes=0-99"})
    assert refused.status_code in (401, 403) and b"RIFF" not in refused.content


def test_a_cached_check_serves_only_its_own_session_and_recording(two_calls: tuple) -> None:
    service, nurse, own, _ = _playing(two_calls)
    _, _, other, _ = two_calls
    assert nurse.get(f"{API}/recordings/{other}/audio").status_code == 404
    stranger = service.person("nurse.b")
    assert stranger.get(f"{API}/recordings/{own}/audio").status_code == 404
    both = nurse.get(
        f"{API}/recordings/{own}/audio", headers={"Authorization": f"Bearer {service.recorder}"}
    )
    assert both.status_code == 401


def test_a_range_request_is_logged_by_route_template_and_session_only(
    two_calls: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    _, nurse, own, _ = _playing(two_calls)
    with caplog.at_level("INFO", logger="callvault.http"):
        assert nurse.get(f"{API}/recordings/{own}/audio").status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "callvault.http"]
    assert any(
        line.startswith("GET /api/v1/recordings/{recording_id}/audio 200 ") and " session=" in line
        for line in lines
    ), lines
    assert not any(own in line for line in lines)
