"""A small vault with people and recordings of two callers, for the privacy officer's tests.

Shared by tests/test_extract.py, test_export.py, test_review.py and
test_breach.py.  The caller ``CALLER`` has three recordings (two in unit-a,
one in unit-b); ``OTHER_CALLER`` has one in unit-a.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from callvault.adapters.audio import analyse
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.core.access import Principal, Role
from callvault.services import accounts, ingest
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.testing import postgres
from callvault.testing.audio import make_tone_wav
from callvault.testing.clock import FakeClock
from callvault.testing.http import ensure_care_units
from callvault.testing.lifecycle import allow_ingest

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)  # a Monday, 10:00 in Stockholm
OPERATOR = Principal("tester", Role.OPERATOR)
CALLER = "070-174 06 05"
CALLER_E164 = "+46701740605"
PNR = "19121212-1212"
OTHER_CALLER = "070-123 45 67"
REASON = "Caller rang back about the earlier advice"
PEOPLE = {
    "nurse.a": ("call_handler", ["unit-a"]),
    "nurse.b": ("call_handler", ["unit-b"]),
    "boss.a": ("supervisor", ["unit-a"]),
    "boss.b": ("supervisor", ["unit-b"]),
    "privacy.p": ("privacy_officer", []),
    "reviewer.r": ("log_reviewer", []),
    "admin.x": ("administrator", []),
}


@dataclass
class World:
    vault: Vault
    clock: FakeClock
    tmp: Path
    mine: list[uuid.UUID]  # CALLER's recordings: unit-a (nurse.a), unit-a (nurse.c), unit-b
    other: uuid.UUID  # OTHER_CALLER's, unit-a
    audio: dict[uuid.UUID, bytes]

    def who(self, name: str, session: str = "5e55105e55105e55") -> Principal:
        role, units = PEOPLE[name]
        return Principal(name, role, care_units=frozenset(units), session=session)


def database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        (tmp_path / "data").mkdir(mode=0o700)
        yield f"sqlite:///{tmp_path / 'data' / 'vault.db'}"
    else:
        with postgres.throwaway_database() as url:
            yield url


@contextmanager
def make_world(tmp_path: Path, url: str) -> Iterator[World]:
    (tmp_path / "keys").mkdir(mode=0o700)
    keys = KeyfileProvider.create(
        tmp_path / "keys" / "k", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
    )
    clock = FakeClock(T0)
    vault = Vault(
        store=SqlMetadataStore.open(url),
        blobs=open_blobstore((tmp_path / "blobs").as_uri()),
        keys=keys,
        clock=clock,
        probe=analyse,
        origin=vault_service.origin_for(str(uuid.uuid4())),
    )
    try:
        vault_service.initialise(vault, OPERATOR)
        ensure_care_units(vault, ["unit-a", "unit-b"])
        allow_ingest(vault, ["unit-a", "unit-b"], ["record"])
        for name, (role, units) in PEOPLE.items():
            accounts.create_user(vault, OPERATOR, name, role, units)
        audio: dict[uuid.UUID, bytes] = {}
        ids = []
        plan = (
            (440, "unit-a", "nurse.a", CALLER, PNR),
            (550, "unit-a", "nurse.c", CALLER, None),
            (660, "unit-b", "nurse.b", CALLER, None),
            (770, "unit-a", "nurse.a", OTHER_CALLER, None),
        )
        for minute, (freq, unit, agent, caller, pnr) in enumerate(plan, start=10):
            wav = make_tone_wav(tmp_path / f"{freq}.wav", 2.0, frequency=freq)
            details = CallDetails.parse(
                care_unit=unit,
                started_at=f"2026-03-01T10:{minute}:00+01:00",
                today=T0.date(),
                caller=caller,
                personnummer=pnr,
                agent=agent,
            )
            rid = ingest.ingest(vault, OPERATOR, wav, details).recording_id
            audio[rid] = wav.read_bytes()
            ids.append(rid)
        yield World(vault, clock, tmp_path, ids[:3], ids[3], audio)
    finally:
        vault.close()
