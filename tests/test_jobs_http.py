"""``GET /api/v1/admin/jobs`` for the admin page: administrators see job states and
progress, never payloads; people without the need are refused (R8)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from callvault.adapters.audio import analyse
from callvault.adapters.blobstore import open_blobstore
from callvault.adapters.db.store import SqlMetadataStore, create_engine_for
from callvault.adapters.jobs.sql import SqlJobQueue
from callvault.adapters.jobs.sql_data import SqlJobData
from callvault.adapters.keys.keyfile import KdfParams, KeyfileProvider
from callvault.core.access import OPERATOR, Principal
from callvault.entrypoints.http.app import create_app
from callvault.services import jobs
from callvault.services import vault as vault_service
from callvault.services.context import Vault
from callvault.testing.clock import FakeClock
from callvault.testing.http import cheap_password_hashing, enrolled_account, signed_in_client

T0 = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
OP = Principal("op", OPERATOR)


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    url = f"sqlite:///{tmp_path / 'vault.db'}"
    clock = FakeClock(T0)
    opened = Vault(
        store=SqlMetadataStore.open(url),
        blobs=open_blobstore("memory:"),
        keys=KeyfileProvider.create(
            tmp_path / "k", b"pass phrase", kdf_params=KdfParams(1, 1024, 1)
        ),
        clock=clock,
        probe=analyse,
        origin="callvault.test/jobs-http",
        jobs=SqlJobQueue(create_engine_for(url), clock),
        job_data=SqlJobData(create_engine_for(url)),
    )
    vault_service.initialise(opened, OP)
    yield opened
    opened.close()


def test_administrator_sees_jobs_without_payloads_and_others_are_refused(vault: Vault) -> None:
    recording = uuid.uuid4()
    jobs.enqueue(vault, OP, "peaks_recording", {"recording_id": str(recording)})
    jobs.enqueue(vault, OP, "scrub")
    app = create_app(vault, web=False)
    with cheap_password_hashing():
        admin = enrolled_account(vault, "admin.a", role="administrator", care_units=[])
        boss = enrolled_account(vault, "boss.a", role="supervisor", care_units=["unit-x"])

    async def scenario() -> None:
        async with signed_in_client(app, vault, admin) as client:
            answer = await client.get("/api/v1/admin/jobs")
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert (body["queued"], body["running"], body["failed"]) == (2, 0, 0)
            assert [j["kind"] for j in body["jobs"]] == ["scrub", "peaks_recording"]
            assert body["jobs"][1]["progress_done"] == 0
            assert str(recording) not in answer.text  # no payloads, no lock keys
            bad = await client.get("/api/v1/admin/jobs", params={"state": "sleeping"})
            assert bad.status_code == 400 and "unknown job state" in bad.json()["message"]
        async with signed_in_client(app, vault, boss) as client:
            assert (await client.get("/api/v1/admin/jobs")).status_code == 403

    anyio.run(scenario)
