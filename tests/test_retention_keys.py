"""A destroyed bucket KEK stays destroyed in old database backups, on both key
providers: the key file and a PKCS#11 token (SoftHSM2) (R20, R24)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from callvault.adapters.audio import analyse
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.adapters.keys.pkcs11 import Pkcs11Provider
from callvault.core import keys as hierarchy
from callvault.core.access import OPERATOR, Principal
from callvault.core.errors import KeyUnavailable
from callvault.core.ports import KeyProvider
from callvault.services import keyring, retention
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.services.ingest import ingest
from callvault.testing.audio import make_tone_wav
from callvault.testing.clock import FakeClock
from callvault.testing.lifecycle import allow_ingest
from callvault.testing.softhsm import softhsm_token

T0 = dt.datetime(2019, 2, 18, 9, 22, tzinfo=dt.UTC)
OP = Principal("op.root", OPERATOR)


@pytest.fixture(params=["keyfile", "pkcs11"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyProvider]:
    if request.param == "keyfile":
        yield KeyfileProvider.create(
            tmp_path / "k", b"test passphrase", kdf_params=KdfParams(1, 1024, 1)
        )
        return
    with softhsm_token(tmp_path / "hsm") as token:
        made = Pkcs11Provider.create(
            module_path=token.module_path,
            token_label=token.label,
            user_pin=token.user_pin,
            key_label_prefix="callvault-root",
        )
        yield made
        made.close()


def test_sweep_with_rotate_leaves_a_backup_copy_of_a_destroyed_bucket_unopenable(
    provider: KeyProvider, tmp_path: Path
) -> None:
    clock = FakeClock(T0)
    vault = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{tmp_path / 'vault.db'}"),
        blobs=open_blobstore("memory:"),
        keys=provider,
        clock=clock,
        probe=analyse,
        origin="callvault.test/retention-keys",
    )
    vault_service.initialise(vault, OP)
    allow_ingest(vault, ["unit-a"])
    ids = {}
    for klass in ("quality", "record"):
        wav = make_tone_wav(tmp_path / f"{klass}.wav", 0.2, frequency=330.0 + len(ids) * 50)
        details = CallDetails.parse(
            care_unit="unit-a", started_at=T0, today=T0.date(), retention_class=klass
        )
        ids[klass] = ingest(vault, OP, wav, details).recording_id
    with vault.store.transaction() as tx:
        backup = {(b.month, b.retention_class): b for b in tx.bucket_keks()}  # a DB backup
    old = backup[("2019-02", "quality")]
    assert old.root_version == 1

    clock.time = T0 + dt.timedelta(days=60)
    report = retention.sweep(vault, OP, rotate=True)
    assert report.buckets_destroyed == ["2019-02/quality v1"]
    assert report.roots_retired == [1]
    assert provider.versions() == [2]

    # The backup's wrapped bucket KEK names a root version nobody holds any more.
    vault._bucket_kek_cache.clear()
    with pytest.raises(KeyUnavailable):
        keyring.bucket_kek(vault, old)
    ad = hierarchy.bucket_kek_ad(hierarchy.BucketId("2019-02", "quality"), 1)
    with pytest.raises(KeyUnavailable):
        provider.unwrap(1, old.wrapped, ad)
    # Relabelled as the current root, it does not open either (bound by the AD).
    with pytest.raises(Exception) as relabelled:
        keyring.bucket_kek(vault, dataclasses.replace(old, root_version=2))
    assert type(relabelled.value).__name__ in {"IntegrityError", "KeyUnavailable"}
    # What must stay, stays readable: the record document under the new root.
    with vault.store.transaction() as tx:
        row = tx.get_recording(ids["record"])
    assert row is not None
    assert len(keyring.dek_for(vault, row)) == 32
    vault.store.close()
