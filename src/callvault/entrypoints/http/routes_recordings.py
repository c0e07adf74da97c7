"""Recordings: search, metadata, playback, download, ingest and emergency access.

Parse, call one service, render.  The audio route itself, the hot path of
playback, is in ``audio``.  The services decide who may do what and
write the audit entries; nothing here checks a role.  Personal identifiers
(caller number, personnummer) are accepted only in the body of
``POST /recordings/search``, never in a URL: ``GET /recordings`` refuses
every query parameter it does not list.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Literal

import anyio.from_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from callvault.core.access import ANY, Principal
from callvault.core.errors import InvalidInput
from callvault.core.recordings import parse_recording_id
from callvault.entrypoints.http import deps
from callvault.entrypoints.http.audio import audio_headers
from callvault.services import emergency, http_ingest, playback, recordings
from callvault.services.context import Vault

router = APIRouter(prefix="/api/v1", tags=["recordings"])

VaultDep = Annotated[Vault, Depends(deps.vault)]
PrincipalDep = Annotated[Principal, Depends(deps.principal)]
Text64 = Annotated[str | None, Query(max_length=64)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchBody(_Body):
    caller: str | None = Field(default=None, max_length=64)
    personnummer: str | None = Field(default=None, max_length=32)
    call_id: str | None = Field(default=None, max_length=128)
    care_unit: str | None = Field(default=None, max_length=64)
    agent: str | None = Field(default=None, max_length=64)
    started_from: str | None = Field(default=None, max_length=64)
    started_to: str | None = Field(default=None, max_length=64)
    min_duration_seconds: float | None = Field(default=None, ge=0)
    max_duration_seconds: float | None = Field(default=None, ge=0)
    limit: int = Field(default=50, ge=1, le=recordings.MAX_RESULTS)
    cursor: str | None = Field(default=None, max_length=200)


class ReasonBody(_Body):
    reason: str = Field(max_length=500)


class EmergencyBody(_Body):
    reason: str = Field(max_length=500)
    care_units: list[Annotated[str, Field(max_length=64)]] | Literal["any"] = Field(max_length=64)
    duration_minutes: int = Field(default=240, ge=1, le=240)


class SummaryAnswer(BaseModel):
    id: uuid.UUID
    started_at: dt.datetime
    care_unit: str
    agent: str | None
    duration_seconds: float
    media_type: str


class PageAnswer(BaseModel):
    items: list[SummaryAnswer]
    next_cursor: str | None


class DetailAnswer(SummaryAnswer):
    caller: str | None
    personnummer: str | None
    call_id: str | None
    codec: str
    sample_rate: int
    channels: int
    retention_class: str
    size: int
    created_at: dt.datetime


class GrantAnswer(BaseModel):
    kind: str
    expires_at: dt.datetime
    emergency: bool
    url: str


class IngestAnswer(BaseModel):
    id: uuid.UUID
    duplicate: bool
    duration_seconds: float


class EmergencyAnswer(BaseModel):
    care_units: list[str] | Literal["any"]
    opened_at: dt.datetime
    expires_at: dt.datetime


# --- search and metadata --------------------------------------------------------------

_LIST_PARAMS = frozenset(
    {
        "care_unit", "agent", "started_from", "started_to",
        "min_duration_seconds", "max_duration_seconds", "limit", "cursor",
    }
)  # fmt: skip


@router.get("/recordings")
def list_recordings(
    request: Request,
    principal: PrincipalDep,
    vault: VaultDep,
    care_unit: Text64 = None,
    agent: Text64 = None,
    started_from: Text64 = None,
    started_to: Text64 = None,
    min_duration_seconds: Annotated[float | None, Query(ge=0)] = None,
    max_duration_seconds: Annotated[float | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=recordings.MAX_RESULTS)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageAnswer:
    """Recordings the caller may see, by non-personal criteria; paged by ``cursor``."""
    if set(request.query_params) - _LIST_PARAMS:
        raise InvalidInput(
            "unknown query parameter; search by caller or personnummer with "
            "POST /api/v1/recordings/search, never in a URL"
        )
    query = recordings.SearchQuery(
        care_unit=care_unit,
        agent=agent,
        started_from=started_from,
        started_to=started_to,
        min_duration_seconds=min_duration_seconds,
        max_duration_seconds=max_duration_seconds,
        limit=limit,
    )
    return _page(recordings.search_page(vault, principal, query, cursor))


@router.post("/recordings/search")
def search_recordings(body: SearchBody, principal: PrincipalDep, vault: VaultDep) -> PageAnswer:
    """Search with identifiers too; they travel only in this body and are logged never."""
    fields = body.model_dump(exclude={"cursor"})
    page = recordings.search_page(vault, principal, recordings.SearchQuery(**fields), body.cursor)
    return _page(page)


def _page(page: recordings.Page) -> PageAnswer:
    return PageAnswer(items=[_summary(s) for s in page.items], next_cursor=page.next_cursor)


def _summary(s: recordings.Summary) -> SummaryAnswer:
    return SummaryAnswer(
        id=s.id,
        started_at=s.started_at,
        care_unit=s.care_unit,
        agent=s.agent,
        duration_seconds=s.duration_seconds,
        media_type=s.media_type,
    )


@router.get("/recordings/{recording_id}")
def recording_metadata(recording_id: str, principal: PrincipalDep, vault: VaultDep) -> DetailAnswer:
    """Metadata of one recording; an unknown id and one out of reach answer the same 404."""
    d = recordings.show(vault, principal, _id(recording_id))
    return DetailAnswer(
        **_summary(d.summary).model_dump(),
        caller=d.caller,
        personnummer=d.personnummer,
        call_id=d.call_id,
        codec=d.codec,
        sample_rate=d.sample_rate,
        channels=d.channels,
        retention_class=d.retention_class,
        size=d.plaintext_size,
        created_at=d.created_at,
    )


def _id(text: str) -> uuid.UUID:
    return parse_recording_id(text)


# --- playback and download ----------------------------------------------------------------


@router.post("/recordings/{recording_id}/playback")
def open_playback(
    recording_id: str, body: ReasonBody, principal: PrincipalDep, vault: VaultDep
) -> GrantAnswer:
    """Open a playback grant (10 minutes, this session) for a stated reason."""
    grant = playback.open_playback(vault, principal, _id(recording_id), body.reason)
    return _grant(grant, f"/api/v1/recordings/{grant.recording_id}/audio")


@router.post("/recordings/{recording_id}/download")
def open_download(
    recording_id: str, body: ReasonBody, principal: PrincipalDep, vault: VaultDep
) -> GrantAnswer:
    """Open a one-copy download grant for a stated reason (a separate permission)."""
    grant = playback.open_download(vault, principal, _id(recording_id), body.reason)
    return _grant(grant, f"/api/v1/recordings/{grant.recording_id}/download")


@router.get("/recordings/{recording_id}/download")
def download(recording_id: str, principal: PrincipalDep, vault: VaultDep) -> StreamingResponse:
    """The whole recording as an attachment, once per download grant."""
    return _streamed(playback.download(vault, principal, _id(recording_id)))


def _grant(grant: playback.Grant, url: str) -> GrantAnswer:
    return GrantAnswer(
        kind=grant.kind, expires_at=grant.expires_at, emergency=grant.emergency, url=url
    )


def _streamed(stream: playback.AudioStream) -> StreamingResponse:
    return StreamingResponse(
        stream.chunks,
        status_code=stream.status,
        media_type=stream.media_type,
        headers=audio_headers(stream),
    )


# --- ingest and emergency access --------------------------------------------------------------


@router.post("/recordings", status_code=201)
def ingest_recording(
    request: Request, response: Response, principal: PrincipalDep, vault: VaultDep
) -> IngestAnswer:
    """A recorder's upload (multipart/form-data, fields first, then the ``audio`` part).

    201 with the new id; 200 with the stored id when the call id was seen before.
    """
    result = http_ingest.ingest_upload(
        vault,
        principal,
        request.headers.get("content-type"),
        _content_length(request),
        _body_chunks(request),
    )
    if result.duplicate:
        response.status_code = 200
    return IngestAnswer(
        id=result.recording_id,
        duplicate=result.duplicate,
        duration_seconds=result.duration_seconds,
    )


def _content_length(request: Request) -> int | None:
    text = request.headers.get("content-length")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        raise InvalidInput("malformed Content-Length")
    return int(text)


def _body_chunks(request: Request) -> Iterator[bytes]:
    """The request body as it arrives, for a route running in a worker thread."""
    stream = request.stream()
    while (chunk := anyio.from_thread.run(_next_chunk, stream)) is not None:
        yield chunk


async def _next_chunk(stream: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


@router.post("/emergency")
def open_emergency(
    body: EmergencyBody, principal: PrincipalDep, vault: VaultDep
) -> EmergencyAnswer:
    """Emergency access beyond one's own reach: typed reason, at most 4 hours, reviewed."""
    grant = emergency.open_emergency(
        vault,
        principal,
        body.reason,
        body.care_units,
        dt.timedelta(minutes=body.duration_minutes),
    )
    units: list[str] | Literal["any"] = (
        "any" if grant.care_units is ANY else sorted(grant.care_units)
    )
    return EmergencyAnswer(care_units=units, opened_at=grant.opened_at, expires_at=grant.expires_at)
