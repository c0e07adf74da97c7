"""Policies, holds and erasure over the HTTPS API: the services decide, the routes pass on
(R8 separation of duties, R19-R21)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from callvault.adapters.audio import analyse
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.core.access import OPERATOR, Principal
from callvault.entrypoints.http.app import create_app
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.services.ingest import ingest
from callvault.testing.audio import make_tone_wav
from callvault.testing.clock import FakeClock
from callvault.testing.http import (
    TestAccount,
    cheap_password_hashing,
    enrolled_account,
    signed_in_client,
)

T0 = dt.datetime(2019, 2, 18, 9, 22, tzinfo=dt.UTC)
PHONE = "070-174 06 06"
POLICY = {
    "care_unit": "unit-x",
    "retention_class": "quality",
    "purpose": "Quality follow-up of advice calls",
    "legal_basis": "Consent of the caller",
    "keep_days": 30,
}


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    opened = Vault(
        store=SqlMetadataStore.open(f"sqlite:///{tmp_path / 'vault.db'}"),
        blobs=open_blobstore("memory:"),
        keys=KeyfileProvider.create(
            tmp_path / "k", b"pass phrase", kdf_params=KdfParams(1, 1024, 1)
        ),
        clock=FakeClock(T0),
        probe=analyse,
        origin="callvault.test/retention-http",
    )
    vault_service.initialise(opened, Principal("op", OPERATOR))
    yield opened
    opened.close()


def people(vault: Vault) -> dict[str, TestAccount]:
    with cheap_password_hashing():
        return {
            role: enrolled_account(vault, f"{role}.a", role=role, care_units=units)
            for role, units in (
                ("administrator", []),
                ("privacy_officer", []),
                ("supervisor", ["unit-x"]),
            )
        }


def test_policies_holds_and_erasure_over_the_api_follow_the_roles(
    vault: Vault, tmp_path: Path
) -> None:
    app = create_app(vault, web=False)
    who = people(vault)

    async def scenario() -> uuid.UUID:
        async with signed_in_client(app, vault, who["supervisor"]) as boss:
            refused = await boss.post("/api/v1/policies", json=POLICY)
            assert refused.status_code == 403
        async with signed_in_client(app, vault, who["administrator"]) as admin:
            made = await admin.post("/api/v1/policies", json=POLICY)
            assert made.status_code == 200, made.text
            assert made.json()["record_document"] is False
            bad = await admin.post("/api/v1/policies", json={**POLICY, "keep_days": 9999})
            assert bad.status_code == 400 and "1 to 3652 days" in bad.json()["message"]
            listed = (await admin.get("/api/v1/policies")).json()["policies"]
            kept = {(p["care_unit"], p["retention_class"]): p["keep_days"] for p in listed}
            assert kept[("unit-x", "quality")] == 30
        wav = make_tone_wav(tmp_path / "a.wav", 0.2)
        details = CallDetails.parse(
            care_unit="unit-x", started_at=T0, today=T0.date(), caller=PHONE,
            retention_class="quality",
        )  # fmt: skip
        recording_id = ingest(vault, Principal("op", OPERATOR), wav, details).recording_id
        async with signed_in_client(app, vault, who["administrator"]) as admin:
            path = f"/api/v1/recordings/{recording_id}/hold"
            assert (await admin.post(path, json={"reference": "DNR 2019/4"})).status_code == 403
        async with signed_in_client(app, vault, who["privacy_officer"]) as po:
            held = await po.post(
                f"/api/v1/recordings/{recording_id}/hold", json={"reference": "DNR 2019/4"}
            )
            assert held.status_code == 200, held.text
            plan = await po.post("/api/v1/erasure", json={"caller": PHONE, "reason": "Art 17"})
            assert plan.status_code == 200, plan.text
            (item,) = plan.json()["items"]
            assert (item["verdict"], item["erased"]) == ("legal_hold", False)
            await po.post(
                f"/api/v1/recordings/{recording_id}/release", json={"reference": "DNR 2019/4"}
            )
            done = await po.post(
                "/api/v1/erasure", json={"caller": PHONE, "reason": "Art 17", "dry_run": False}
            )
            assert done.json()["erased"] == 1
            assert PHONE not in done.text and "0701740606" not in done.text
        return recording_id

    gone = anyio.run(scenario)
    with vault.store.transaction() as tx:
        assert tx.get_recording(gone) is None
