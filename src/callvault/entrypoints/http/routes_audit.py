"""The audit log for log reviewers: filtered, paged reading and verification.

Parse, call one service, render; ``services.audit_view`` decides who may.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from callvault.core.access import Principal
from callvault.core.recordings import parse_recording_id
from callvault.entrypoints.http import deps
from callvault.services import audit_view
from callvault.services.context import Vault

router = APIRouter(prefix="/api/v1", tags=["audit"])

VaultDep = Annotated[Vault, Depends(deps.vault)]
PrincipalDep = Annotated[Principal, Depends(deps.principal)]
Text64 = Annotated[str | None, Query(max_length=64)]


class EntryAnswer(BaseModel):
    seq: int
    time: dt.datetime
    actor: str
    role: str
    care_unit: str | None
    action: str
    recording_id: uuid.UUID | None
    outcome: str
    reason: str | None
    session: str | None
    detail: dict[str, str | int | bool | None]


class AuditPageAnswer(BaseModel):
    entries: list[EntryAnswer]
    next_cursor: str | None


class VerifyAnswer(BaseModel):
    ok: bool
    size: int
    checkpoints_checked: int
    unanchored: int
    problems: list[str]


@router.get("/audit")
def audit_entries(
    principal: PrincipalDep,
    vault: VaultDep,
    time_from: Text64 = None,
    time_to: Text64 = None,
    action: Text64 = None,
    actor: Text64 = None,
    care_unit: Text64 = None,
    recording_id: Text64 = None,
    limit: Annotated[int, Query(ge=1, le=audit_view.MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> AuditPageAnswer:
    """Entries newest first, narrowed by time (ISO 8601 or a date), action, actor, care
    unit, recording."""
    query = audit_view.AuditQuery(
        time_from=time_from,
        time_to=time_to,
        action=action,
        actor=actor,
        care_unit=care_unit,
        recording_id=parse_recording_id(recording_id) if recording_id else None,
        limit=limit,
        cursor=cursor,
    )
    page = audit_view.list_entries(vault, principal, query)
    return AuditPageAnswer(
        entries=[
            EntryAnswer(
                seq=e.seq,
                time=e.event.time,
                actor=e.event.actor,
                role=e.event.role,
                care_unit=e.event.care_unit,
                action=str(e.event.action),
                recording_id=e.event.recording_id,
                outcome=str(e.event.outcome),
                reason=e.event.reason,
                session=e.event.session,
                detail=dict(e.event.detail),
            )
            for e in page.entries
        ],
        next_cursor=page.next_cursor,
    )


@router.get("/audit/verify")
def verify_audit(principal: PrincipalDep, vault: VaultDep) -> VerifyAnswer:
    """Recompute the Merkle tree over every entry and check every signed checkpoint."""
    report = audit_view.verify_log(vault, principal)
    return VerifyAnswer(
        ok=report.ok,
        size=report.size,
        checkpoints_checked=report.checkpoints_checked,
        unanchored=report.unanchored,
        problems=report.problems,
    )
