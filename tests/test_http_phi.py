"""R3 over HTTP: a whole day's scenario with planted phone numbers and personnummer,
and nowhere they may not be.

The real server (uvicorn with the service's own configuration, over TLS on
loopback) runs in this process, so every log record any library emits is
seen, at DEBUG, whatever the service's logging configuration would have
dropped.  A recorder uploads calls carrying the identifiers (in the form
fields, and in the audio part's file name); people search by them (in POST
bodies), view, play ranges, download, open emergency access, read the log and
sign out; some requests are wrong on purpose (a bad personnummer, a reason
that quotes a number, a number in a query string), because error paths are
where values get echoed.  Then every log record, everything written to
stdout/stderr, every audit entry, every request URL and every response
header is searched for every typed form of the values, and so is every file
under the vault's home and its temporary directory.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import uvicorn

from callvault.adapters.audio import analyse
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.adapters.tls import ensure_self_signed, server_context
from callvault.core.access import Principal, Role
from callvault.entrypoints.http import serve
from callvault.entrypoints.http.app import create_app
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.testing.audio import wav_header
from callvault.testing.clock import FakeClock
from callvault.testing.http import (
    TestAccount,
    cheap_password_hashing,
    enrolled_account,
    recorder_token,
    sign_in,
)
from callvault.testing.scan import find_leaks, identifier_forms

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
OPERATOR = Principal("tester", Role.OPERATOR)
API = "/api/v1"
REASON = {"reason": "Caller rang back about the earlier advice"}

# Planted values, as people type them, and the forms the vault normalises to.
PHONE_A, PHONE_A_E164 = "070-174 06 05", "+46701740605"
PNR_A = "19121212-1212"
PHONE_B, PHONE_B_E164 = "073-123 45 67", "+46731234567"
PNR_B = "198112189876"
BAD_PNR = "19811218-9877"  # wrong check digit: refused, and never echoed
NEEDLES = (
    identifier_forms(PHONE_A_E164, PNR_A)
    + identifier_forms(PHONE_B_E164, PNR_B)
    + identifier_forms(personnummer=BAD_PNR)
)
# Loggers of the test's own HTTP client, not of the service: they log the
# URLs this test sends, including the one that is wrong on purpose.
CLIENT_LOGGERS = ("httpx", "httpcore")
ACCESS_LOG = logging.getLogger("uvicorn.access")


@dataclass
class Wire:
    """Everything the clients saw go over the wire, but the bodies."""

    urls: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    deliberate: set[str] = field(default_factory=set)  # URLs carrying a value on purpose

    def on_request(self, request: httpx.Request) -> None:
        self.urls.append(unquote(str(request.url)))

    def on_response(self, response: httpx.Response) -> None:
        self.headers += [f"{k}: {v}" for k, v in response.headers.multi_items()]


@dataclass
class Service:
    vault: Vault
    clock: FakeClock
    home: Path
    tmpdir: Path
    url: str
    cafile: Path
    accounts: dict[str, TestAccount]
    recorder: str
    wire: Wire
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self) -> httpx.Client:
        hooks: dict[str, list[Callable[..., Any]]] = {
            "request": [self.wire.on_request],
            "response": [self.wire.on_response],
        }
        verify = ssl.create_default_context(cafile=str(self.cafile))
        client = httpx.Client(base_url=self.url, verify=verify, event_hooks=hooks, timeout=30)
        self.clients.append(client)
        return client

    def person(self, name: str) -> httpx.Client:
        client = self.client()
        sign_in(client, self.vault, self.accounts[name])
        self.clock.advance(seconds=30)  # a fresh TOTP step for the next sign-in
        return client

    def recorder_client(self) -> httpx.Client:
        client = self.client()
        client.headers["Authorization"] = f"Bearer {self.recorder}"
        return client


@pytest.fixture
def every_logger_at_debug(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], None]]:
    """Turns every logger up to DEBUG and puts caplog's handler wherever records
    are delivered (the root, and every logger with handlers of its own), keeping
    the configuration's choices of what goes nowhere: uvicorn's access log is off
    because its logger has no handler and does not propagate, and handing it
    one would turn it on.  Everything is restored afterwards."""
    manager = logging.root.manager
    saved = {
        name: (lg.level, lg.propagate, list(lg.handlers), lg.disabled)
        for name, lg in [("", logging.root), *manager.loggerDict.items()]
        if isinstance(lg, logging.Logger)
    }

    def turn_up() -> None:
        for lg in [logging.root, *manager.loggerDict.values()]:
            if isinstance(lg, logging.Logger):
                lg.setLevel(logging.DEBUG)
                lg.disabled = False
                if lg.handlers or lg is logging.root:
                    lg.addHandler(caplog.handler)

    yield turn_up
    for name, lg in list(manager.loggerDict.items()):
        if isinstance(lg, logging.Logger) and name not in saved:
            lg.setLevel(logging.NOTSET)
            lg.propagate, lg.handlers = True, []
    for name, (level, propagate, handlers, disabled) in saved.items():
        lg = logging.getLogger(name) if name else logging.root
        lg.setLevel(level)
        lg.propagate, lg.handlers, lg.disabled = propagate, handlers, disabled


@pytest.fixture
def service(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    every_logger_at_debug: Callable[[], None],
) -> Iterator[Service]:
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    for sub in (home / "keys", home / "data", tmpdir):
        sub.mkdir(mode=0o700, parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    clock = FakeClock(T0)
    vault = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{home / 'data' / 'vault.db'}"),
        blobs=open_blobstore((home / "data" / "blobs").as_uri()),
        keys=KeyfileProvider.create(home / "keys" / "k", b"pass", kdf_params=KdfParams(1, 1024, 1)),
        clock=clock,
        probe=analyse,
        origin=vault_service.origin_for(str(uuid.uuid4())),
        max_ingest_bytes=1024 * 1024,
    )
    tls = ensure_self_signed(home / "tls")
    address = serve.resolve_bind("127.0.0.1", 0, certificate_configured=False)
    sock = serve.open_listener(address)
    bound = serve.BindAddress(socket.AF_INET, tuple(sock.getsockname()))
    # The service's own configuration (its log setup included), then every logger opened up.
    config = serve.server_config(create_app(vault), server_context(tls), bound)
    # uvicorn writes its access log only if this logger has somewhere to go.
    assert not ACCESS_LOG.hasHandlers()
    every_logger_at_debug()
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    try:
        vault_service.initialise(vault, OPERATOR)
        with cheap_password_hashing():
            people = {
                "nurse.a": ("call_handler", ["unit-a"]),
                "boss.a": ("supervisor", ["unit-a"]),
                "nurse.b": ("call_handler", ["unit-b"]),
                "reviewer.r": ("log_reviewer", []),
            }
            accounts = {
                name: enrolled_account(vault, name, role=role, care_units=units)
                for name, (role, units) in people.items()
            }
            token = recorder_token(vault, "rec-a", "unit-a")
            thread.start()
            deadline = time.monotonic() + 10
            while not server.started:
                assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
                time.sleep(0.02)
            svc = Service(vault, clock, home, tmpdir, bound.url, tls.cert, accounts, token, Wire())
            yield svc
            for client in svc.clients:
                client.close()
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        vault.close()


def noise_wav(size: int, seed: int) -> bytes:
    data = (size - 44) // 2 * 2
    header = wav_header(sample_rate=8000, channels=1, data_size=data)
    return header + random.Random(seed).randbytes(data)


def upload(client: httpx.Client, audio: bytes, call_id: str, **fields: str) -> httpx.Response:
    form = {"call_id": call_id, "started_at": "2026-03-01T10:22:00+01:00", **fields}
    # A recorder that names files after the caller: the name must go nowhere.
    name = f"call-{PHONE_A.replace(' ', '')}-{PNR_A}.wav"
    return client.post(f"{API}/recordings", data=form, files={"audio": (name, audio)})


def status(response: httpx.Response, expected: int) -> httpx.Response:
    assert response.status_code == expected, (response.request.url.path, response.text)
    return response


def scenario(svc: Service) -> tuple[str, str]:
    """The day's work over HTTP; returns the two recordings' ids."""
    recorder = svc.recorder_client()
    a = status(upload(recorder, noise_wav(70_000, 1), "call-a", caller=PHONE_A,
                      personnummer=PNR_A, agent="nurse.a"), 201).json()["id"]  # fmt: skip
    b = status(upload(recorder, noise_wav(9_000, 2), "call-b", caller=PHONE_B,
                      personnummer=PNR_B, agent="nurse.c"), 201).json()["id"]  # fmt: skip
    status(upload(recorder, noise_wav(70_000, 1), "call-a", caller=PHONE_A), 200)
    status(upload(recorder, noise_wav(5_000, 3), "call-c", personnummer=BAD_PNR), 400)
    status(upload(recorder, b"not audio " + PHONE_A.encode(), "call-d", caller=PHONE_A), 415)

    guess = svc.client()  # people type identifiers into the user name field
    body = {"username": PNR_A, "password": PHONE_A_E164 + " and more"}
    status(guess.post(f"{API}/auth/login", json=body), 401)

    nurse = svc.person("nurse.a")
    search = f"{API}/recordings/search"
    for query in ({"caller": PHONE_A}, {"personnummer": PNR_A.replace("-", "")},
                  {"caller": PHONE_A_E164, "personnummer": PNR_A}):  # fmt: skip
        items = status(nurse.post(search, json=query), 200).json()["items"]
        assert [i["id"] for i in items] == [a]
    status(nurse.post(search, json={"personnummer": BAD_PNR}), 400)
    status(nurse.get(f"{API}/recordings", params={"care_unit": "unit-a"}), 200)
    wrong = nurse.get(f"{API}/recordings", params={"caller": PHONE_A_E164})
    svc.wire.deliberate.add(unquote(str(wrong.request.url)))
    status(wrong, 400)
    shown = status(nurse.get(f"{API}/recordings/{a}"), 200).json()
    assert (shown["caller"], shown["personnummer"]) == (PHONE_A_E164, PNR_A.replace("-", ""))
    status(nurse.post(f"{API}/recordings/{a}/playback",
                      json={"reason": f"Caller {PHONE_A} rang back"}), 400)  # fmt: skip
    status(nurse.post(f"{API}/recordings/{a}/playback", json=REASON), 200)
    audio = f"{API}/recordings/{a}/audio"
    for header, code in (("bytes=0-99", 206), ("bytes=-100", 206), ("bytes=65000-", 206),
                         ("bytes=5-2", 400), ("bytes=99999999-", 416)):  # fmt: skip
        status(nurse.get(audio, headers={"Range": header}), code)
    status(nurse.get(audio), 200)
    status(nurse.post(f"{API}/auth/logout"), 204)

    boss = svc.person("boss.a")
    status(boss.get(f"{API}/recordings/{b}"), 200)
    status(boss.post(f"{API}/recordings/{b}/download", json=REASON), 200)
    status(boss.get(f"{API}/recordings/{b}/download"), 200)
    status(boss.post(f"{API}/auth/logout"), 204)

    outsider = svc.person("nurse.b")
    status(outsider.get(f"{API}/recordings/{a}"), 404)
    emergency = {"care_units": ["unit-a"], "duration_minutes": 30}
    quoted = {**emergency, "reason": f"Patient {PNR_A} is back"}
    status(outsider.post(f"{API}/emergency", json=quoted), 400)
    status(outsider.post(f"{API}/emergency", json={**emergency, **REASON}), 200)
    status(outsider.post(f"{API}/recordings/{a}/playback", json=REASON), 200)
    status(outsider.get(audio, headers={"Range": "bytes=100-4095"}), 206)
    status(outsider.post(f"{API}/auth/logout"), 204)

    reviewer = svc.person("reviewer.r")
    status(reviewer.get(f"{API}/audit", params={"limit": 500}), 200)
    status(reviewer.get(f"{API}/audit", params={"recording_id": a}), 200)
    status(reviewer.get(f"{API}/audit/verify"), 200)
    status(reviewer.post(f"{API}/auth/logout"), 204)
    return a, b


def planted_in(text: str | bytes) -> list[bytes]:
    data = text.encode() if isinstance(text, str) else text
    return [needle for needle in NEEDLES if needle in data]


def test_planted_identifiers_appear_in_no_log_entry_url_header_or_file(
    service: Service, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # pytest hands every non-propagating logger its capture handler for the
    # test's call phase; uvicorn takes a handler on its access logger as the
    # signal to write the access log (raw paths and query strings), which the
    # service's configuration switches off by leaving it none.
    ACCESS_LOG.handlers.clear()
    scenario(service)
    time.sleep(0.1)  # the last request lines are written after the answers are sent

    # A record passes caplog's handler once for each logger it propagates through.
    unique = {id(r): r for r in caplog.get_records("setup") + caplog.records}.values()
    records = [r for r in unique if not r.name.startswith(CLIENT_LOGGERS)]
    formatter = logging.Formatter()
    leaked_logs = [
        f"{r.name}: {r.getMessage()}"
        for r in records
        if planted_in(
            r.getMessage() + (formatter.formatException(r.exc_info) if r.exc_info else "")
        )
    ]
    assert leaked_logs == [], "\n".join(leaked_logs)
    out, err = capfd.readouterr()
    assert planted_in(out + err) == []

    audit = list(service.vault.store.iter_audit())
    assert [r.seq for r in audit if planted_in(r.body)] == []

    urls = [u for u in service.wire.urls if u not in service.wire.deliberate]
    assert [u for u in urls if planted_in(u)] == []
    assert [h for h in service.wire.headers if planted_in(h)] == []

    assert find_leaks([service.home, service.tmpdir], NEEDLES) == []

    # Controls: the capture saw what it should, so an empty result means something.
    names = {r.name for r in records}
    assert {"callvault.http", "uvicorn.error"} <= names
    assert any(r.levelno == logging.DEBUG for r in records)
    assert sum(1 for r in records if r.name == "callvault.http") >= 40
    assert len(audit) >= 40 and len(urls) >= 40
    assert service.wire.deliberate and all(planted_in(u) for u in service.wire.deliberate)
    assert any(p.suffix == ".db" for p in service.home.rglob("*"))
    assert len(list((service.home / "data" / "blobs").rglob("*"))) >= 2
