"""Call details and peaks are sealed under the recording's own key and bound to it."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest

from callvault.adapters.audio import analyse
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.core.access import OPERATOR, Principal
from callvault.core.errors import IntegrityError
from callvault.core.ports import SystemClock
from callvault.services import keyring
from callvault.services.context import Vault
from callvault.services.details import CallDetails, open_details, open_peaks
from callvault.services.ingest import ingest
from callvault.testing.audio import make_tone_wav
from callvault.testing.lifecycle import allow_ingest


@pytest.fixture
def vault(tmp_path: Path):
    keys = KeyfileProvider.create(
        tmp_path / "k", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
    )
    opened = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{tmp_path / 'vault.db'}"),
        blobs=open_blobstore("memory:"),
        keys=keys,
        clock=SystemClock(),
        probe=analyse,
        origin="callvault.test/details",
    )
    allow_ingest(opened, ["1177-sthlm"])
    yield opened
    opened.close()


def stored(vault: Vault, tmp_path: Path):
    wav = tmp_path / "call.wav"
    make_tone_wav(wav, seconds=3.0, rate=8000, encoding="pcm16")
    details = CallDetails.parse(
        care_unit="1177-sthlm", started_at="2019-02-18T10:22:00+01:00",
        today=vault.now().date(), caller="070-174 06 05", personnummer="19121212-1212",
    )  # fmt: skip
    result = ingest(vault, Principal("op", OPERATOR), wav, details)
    with vault.store.transaction() as tx:
        row = tx.get_recording(result.recording_id)
    assert row is not None
    return row, wav


def test_peaks_round_trip_to_what_the_probe_computed(vault, tmp_path):
    row, wav = stored(vault, tmp_path)
    dek = keyring.dek_for(vault, row)
    assert open_peaks(row.id, dek, row.enc_peaks) == analyse(wav, max_bytes=10**9).peaks


def test_peaks_and_identifiers_do_not_open_under_another_recording_id(vault, tmp_path):
    row, _ = stored(vault, tmp_path)
    dek = keyring.dek_for(vault, row)
    other = uuid.uuid4()
    with pytest.raises(IntegrityError):
        open_peaks(other, dek, row.enc_peaks)
    with pytest.raises(IntegrityError):
        open_details(other, dek, row.enc_caller, None, None)


def test_a_flipped_bit_in_sealed_peaks_is_an_integrity_error(vault, tmp_path):
    row, _ = stored(vault, tmp_path)
    dek = keyring.dek_for(vault, row)
    damaged = bytearray(row.enc_peaks)
    damaged[20] ^= 1
    with pytest.raises(IntegrityError):
        open_peaks(row.id, dek, bytes(damaged))
    opened = open_details(row.id, dek, row.enc_caller, row.enc_pnr, None)
    assert opened.caller == "+46701740605" and opened.personnummer == "191212121212"
    assert dataclasses.asdict(opened)["call_id"] is None
