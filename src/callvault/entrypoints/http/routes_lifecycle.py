"""Recording policies, legal holds and erasure by caller (R19-R21).  Parse, call, render.

The services decide who may: policies are the administrators' (``policy.manage``),
holds and erasure the privacy officer's (``recording.hold``, ``subject.erase``).
A caller's phone number or personnummer travels in the request body only,
never in a URL.  The retention sweep has no route: it is the local
operator's (``callvault retention sweep``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from callvault.core.access import Principal
from callvault.core.retention import LegalHold, RecordingPolicy
from callvault.entrypoints.http import deps
from callvault.services import erasure, policies, retention
from callvault.services.context import Vault

router = APIRouter(prefix="/api/v1", tags=["lifecycle"])

VaultDep = Annotated[Vault, Depends(deps.vault)]
PrincipalDep = Annotated[Principal, Depends(deps.principal)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyBody(_Body):
    care_unit: str = Field(max_length=64)
    retention_class: str = Field(max_length=16)
    purpose: str = Field(max_length=500)
    legal_basis: str = Field(max_length=500)
    keep_days: int | None = Field(default=None, ge=0, le=100_000)


class PolicyKeyBody(_Body):
    care_unit: str = Field(max_length=64)
    retention_class: str = Field(max_length=16)


class ReferenceBody(_Body):
    reference: str = Field(max_length=64)


class ErasureBody(_Body):
    caller: str | None = Field(default=None, max_length=40)
    personnummer: str | None = Field(default=None, max_length=20)
    reason: str = Field(max_length=500)
    decision: str | None = Field(default=None, max_length=64)
    dry_run: bool = True


class PolicyAnswer(BaseModel):
    care_unit: str
    retention_class: str
    purpose: str
    legal_basis: str
    keep_days: int
    record_document: bool
    active: bool
    changed_at: dt.datetime
    changed_by: str


class PoliciesAnswer(BaseModel):
    policies: list[PolicyAnswer]


class HoldAnswer(BaseModel):
    recording_id: uuid.UUID
    reference: str
    set_by: str
    set_at: dt.datetime


class ErasureItemAnswer(BaseModel):
    recording_id: uuid.UUID
    care_unit: str
    started_at: dt.datetime
    retention_class: str
    verdict: str = Field(description="erasable, due, legal_hold or record_document_duty")
    keep_until: dt.datetime | None
    erased: bool


class ErasureAnswer(BaseModel):
    dry_run: bool
    matched: int
    erased: int
    items: list[ErasureItemAnswer]


def _policy(p: RecordingPolicy) -> PolicyAnswer:
    return PolicyAnswer(
        care_unit=p.care_unit,
        retention_class=p.retention_class,
        purpose=p.purpose,
        legal_basis=p.legal_basis,
        keep_days=p.keep_days,
        record_document=p.record_document,
        active=p.active,
        changed_at=p.changed_at,
        changed_by=p.changed_by,
    )


def _hold(h: LegalHold) -> HoldAnswer:
    return HoldAnswer(
        recording_id=h.recording_id, reference=h.reference, set_by=h.set_by, set_at=h.set_at
    )


@router.get("/policies")
def list_policies(principal: PrincipalDep, vault: VaultDep) -> PoliciesAnswer:
    return PoliciesAnswer(policies=[_policy(p) for p in policies.list_policies(vault, principal)])


@router.post("/policies")
def set_policy(body: PolicyBody, principal: PrincipalDep, vault: VaultDep) -> PolicyAnswer:
    """Create or replace the policy of a care unit and retention class."""
    return _policy(
        policies.set_policy(
            vault,
            principal,
            care_unit=body.care_unit,
            retention_class=body.retention_class,
            purpose=body.purpose,
            legal_basis=body.legal_basis,
            keep_days=body.keep_days,
        )
    )


@router.post("/policies/retire")
def retire_policy(body: PolicyKeyBody, principal: PrincipalDep, vault: VaultDep) -> PolicyAnswer:
    return _policy(
        policies.retire_policy(
            vault, principal, care_unit=body.care_unit, retention_class=body.retention_class
        )
    )


@router.post("/recordings/{recording_id}/hold")
def hold(
    recording_id: uuid.UUID, body: ReferenceBody, principal: PrincipalDep, vault: VaultDep
) -> HoldAnswer:
    return _hold(retention.hold(vault, principal, recording_id, body.reference))


@router.post("/recordings/{recording_id}/release")
def release(
    recording_id: uuid.UUID, body: ReferenceBody, principal: PrincipalDep, vault: VaultDep
) -> HoldAnswer:
    return _hold(retention.release(vault, principal, recording_id, body.reference))


@router.post("/erasure")
def erase(body: ErasureBody, principal: PrincipalDep, vault: VaultDep) -> ErasureAnswer:
    """A caller's erasure request: with ``dry_run`` (the default) only the plan."""
    report = erasure.erase_by_caller(
        vault,
        principal,
        caller=body.caller,
        personnummer=body.personnummer,
        reason=body.reason,
        decision=body.decision,
        dry_run=body.dry_run,
    )
    gone = set(report.erased)
    return ErasureAnswer(
        dry_run=report.dry_run,
        matched=len(report.items),
        erased=len(gone),
        items=[
            ErasureItemAnswer(
                recording_id=i.recording_id,
                care_unit=i.care_unit,
                started_at=i.started_at,
                retention_class=i.retention_class,
                verdict=str(i.verdict),
                keep_until=i.keep_until,
                erased=i.recording_id in gone,
            )
            for i in report.items
        ],
    )
