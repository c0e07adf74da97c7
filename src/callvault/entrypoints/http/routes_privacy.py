"""The privacy officer's and log reviewer's routes: Art. 15 copies, log extracts,
breach reports and the systematic log review.  Parse, call one service, render.

Callers' identifiers travel only in POST bodies, never in URLs (R3).
"""

from __future__ import annotations

import datetime as dt
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from callvault.core.access import Principal
from callvault.core.rows import ReviewItemRow
from callvault.entrypoints.http import deps
from callvault.services import breach, exports, extract_pdf, extracts, review
from callvault.services.context import Vault
from callvault.services.review_rules import ReviewRules

router = APIRouter(prefix="/api/v1", tags=["privacy"])

VaultDep = Annotated[Vault, Depends(deps.vault)]
PrincipalDep = Annotated[Principal, Depends(deps.principal)]
PASSPHRASE_HEADER = "Callvault-Export-Passphrase"  # noqa: S105 (a header name)
_Text = Annotated[str | None, Field(default=None, max_length=64)]


class SubjectBody(BaseModel):
    caller: _Text = None
    personnummer: _Text = None


class ExtractBody(SubjectBody):
    with_users: bool = False
    format: Literal["json", "pdf"] = "json"
    lang: Literal["sv", "en"] = "sv"


class BreachBody(BaseModel):
    time_from: _Text = None
    time_to: _Text = None
    actor: _Text = None
    show_callers: bool = False


class RunBody(BaseModel):
    period: str = Field(max_length=32)
    sample_share: float = ReviewRules.sample_share
    max_plays_per_day: int = ReviewRules.max_plays_per_day
    max_users_per_recording: int = ReviewRules.max_users_per_recording


class ResolveBody(BaseModel):
    outcome: str = Field(max_length=32)
    comment: str | None = Field(default=None, max_length=500)


class AccessedAnswer(BaseModel):
    recording_id: uuid.UUID
    care_unit: str | None
    started_at: dt.datetime | None
    how: dict[str, int]
    first: dt.datetime
    last: dt.datetime
    caller: str | None
    personnummer: str | None


class BreachAnswer(BaseModel):
    accesses: int
    recordings: list[AccessedAnswer]
    distinct_callers: int
    without_caller: int
    with_identifiers: bool


class RunAnswer(BaseModel):
    period: str
    examined: int
    found: dict[str, int]
    added: int


class ItemAnswer(BaseModel):
    id: int
    kind: str
    audit_seq: int | None
    actor: str
    recording_id: uuid.UUID | None
    created_at: dt.datetime
    resolved_at: dt.datetime | None
    resolved_by: str | None
    outcome: str | None
    comment: str | None


class ItemsAnswer(BaseModel):
    items: list[ItemAnswer]


class ReportAnswer(BaseModel):
    period: str
    by_kind: dict[str, int]
    by_outcome: dict[str, int]
    open_items: int
    incidents: list[ItemAnswer]


# --- Art. 15 copy, log extract, breach report ------------------------------------------------


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    with spool:
        spool.seek(0)
        while chunk := spool.read(64 * 1024):
            yield chunk


@router.post("/privacy/export")
def subject_export(body: SubjectBody, principal: PrincipalDep, vault: VaultDep) -> Response:
    """The caller's recordings as a ZIP inside an age file; the passphrase, shown
    once, is in the ``Callvault-Export-Passphrase`` header (never stored)."""
    # The spool holds age ciphertext only; decrypted audio never reaches it.
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the response stream)
    try:
        result = exports.export(
            vault, principal, spool, caller=body.caller, personnummer=body.personnummer
        )
    except BaseException:
        spool.close()
        raise
    name = f"export-{secrets.token_hex(4)}.zip.age"
    return StreamingResponse(
        _chunks(spool),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(result.size),
            PASSPHRASE_HEADER: result.passphrase,
        },
    )


@router.post("/privacy/extract")
def log_extract(body: ExtractBody, principal: PrincipalDep, vault: VaultDep) -> Response:
    """The patient's log extract (loggutdrag) as JSON with proofs, or as PDF."""
    extract = extracts.produce(
        vault,
        principal,
        caller=body.caller,
        personnummer=body.personnummer,
        with_users=body.with_users,
    )
    if body.format == "pdf":
        return Response(
            extract_pdf.render(extract.document, body.lang), media_type="application/pdf"
        )
    return Response(extract.json_bytes(), media_type="application/json")


@router.post("/privacy/breach")
def breach_report(body: BreachBody, principal: PrincipalDep, vault: VaultDep) -> BreachAnswer:
    """Recordings and callers a time window and/or a user or token reached (Art. 33)."""
    report = breach.breach_report(
        vault,
        principal,
        time_from=body.time_from,
        time_to=body.time_to,
        actor=body.actor,
        show_callers=body.show_callers,
    )
    return BreachAnswer(
        accesses=report.accesses,
        recordings=[AccessedAnswer(**r.__dict__) for r in report.recordings],
        distinct_callers=report.distinct_callers,
        without_caller=report.without_caller,
        with_identifiers=report.with_identifiers,
    )


# --- systematic log review ---------------------------------------------------------------------


def _item(i: ReviewItemRow) -> ItemAnswer:
    fields: dict[str, Any] = {name: getattr(i, name) for name in ItemAnswer.model_fields}
    return ItemAnswer(**fields)


@router.post("/review/run")
def run_review(body: RunBody, principal: PrincipalDep, vault: VaultDep) -> RunAnswer:
    """Apply the review rules to a period (``YYYY-MM``, a day, or ``FROM..TO``)."""
    rules = {
        "sample_share": body.sample_share,
        "max_plays_per_day": body.max_plays_per_day,
        "max_users_per_recording": body.max_users_per_recording,
    }
    run = review.run_review(vault, principal, period=body.period, rules=rules)
    return RunAnswer(
        period=run.period.label, examined=run.examined, found=run.found, added=run.added
    )


@router.get("/review/items")
def review_items(
    principal: PrincipalDep,
    vault: VaultDep,
    all: bool = False,
    period: Annotated[str | None, Query(max_length=32)] = None,
) -> ItemsAnswer:
    """Review items, oldest first: open ones, or ``all=true``."""
    items = review.list_items(vault, principal, open_only=not all, period=period)
    return ItemsAnswer(items=[_item(i) for i in items])


@router.post("/review/items/{item_id}/resolve", status_code=204)
def resolve_item(
    item_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    body: ResolveBody,
    principal: PrincipalDep,
    vault: VaultDep,
) -> None:
    """Record an item's outcome (``ok``, ``follow_up``, ``incident``) and comment."""
    review.resolve(vault, principal, item_id, body.outcome, body.comment)


@router.get("/review/report")
def review_report(
    principal: PrincipalDep, vault: VaultDep, period: Annotated[str, Query(max_length=32)]
) -> ReportAnswer:
    """What was queued, resolved and found in a period."""
    monthly = review.report(vault, principal, period=period)
    return ReportAnswer(
        period=monthly.period.label,
        by_kind=monthly.by_kind,
        by_outcome=monthly.by_outcome,
        open_items=monthly.open_items,
        incidents=[_item(i) for i in monthly.incidents],
    )
