"""A recorder's upload: a multipart/form-data body streamed into the vault (R11, R27).

The body a recorder sends::

    --BOUNDARY
    Content-Disposition: form-data; name="call_id"          required, 1-128 printable
    <value>
    --BOUNDARY
    Content-Disposition: form-data; name="started_at"       required, ISO 8601 with offset
    <value>
    ... caller, personnummer, agent, care_unit, retention_class (optional)
    --BOUNDARY
    Content-Disposition: form-data; name="audio"; filename="anything"
    <WAV or MP3 bytes>
    --BOUNDARY--

Fields come before the audio part: the care unit, call time and call id
decide which key encrypts the audio, and that must be settled before its
first byte arrives.  The body is parsed as it arrives with python-multipart's
low-level parser and the audio goes straight into the encrypting writer;
nothing is spooled (a framework's form parser would spool a large part to a
temporary file, in clear).  The part's file name and content type are
ignored: a file name may carry a phone number (R3), and the content decides
what the audio is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from callvault.core.access import Operation, Principal, UnitTarget
from callvault.core.errors import InvalidInput, TooLarge
from callvault.services import ingest
from callvault.services.context import Vault
from callvault.services.details import CallDetails
from callvault.services.guard import authorise

AUDIO_PART = "audio"
FIELDS = frozenset(
    {"call_id", "started_at", "caller", "personnummer", "agent", "care_unit", "retention_class"}
)
MAX_FIELD_BYTES = 1024
# Room for the fields, part headers and boundaries on top of the audio itself.
BODY_OVERHEAD = 64 * 1024

_Event = tuple[str, "str | bytes | None"]


def ingest_upload(
    vault: Vault,
    principal: Principal,
    content_type: str | None,
    content_length: int | None,
    body: Iterable[bytes],
) -> ingest.IngestResult:
    """Parse one upload from ``body`` and ingest it with :func:`ingest.ingest_stream`.

    Whether the principal may ingest at all is settled before a byte of the
    body is read (refusals are logged).  ``TooLarge`` if the declared or
    actual body exceeds the ingest limit plus ``BODY_OVERHEAD``;
    ``InvalidInput`` for a malformed body, an unknown, repeated or missing
    field; ``UnsupportedAudio`` for audio the vault refuses.  Messages name
    fields, never their values.
    """
    unit = principal.care_unit
    authorise(vault, principal, Operation.RECORDING_INGEST, UnitTarget(unit) if unit else None)
    limit = vault.max_ingest_bytes + BODY_OVERHEAD
    if content_length is not None and content_length > limit:
        raise TooLarge(f"the upload is larger than the {limit / 1_000_000:g} MB limit")
    upload = MultipartUpload(content_type, body, max_body=limit)
    fields = upload.fields()
    for name in ("call_id", "started_at"):
        if not fields.get(name):
            raise InvalidInput(f"the field {name} is required")
    details = CallDetails.parse(
        care_unit=fields.get("care_unit") or unit or "",
        started_at=fields["started_at"],
        today=vault.now().date(),
        caller=fields.get("caller"),
        personnummer=fields.get("personnummer"),
        agent=fields.get("agent"),
        call_id=fields["call_id"],
        retention_class=fields.get("retention_class") or "record",
    )
    return ingest.ingest_stream(vault, principal, details, upload.audio())


class MultipartUpload:
    """Pull-based reading of a multipart/form-data body: ``fields()``, then ``audio()``.

    Chunks are taken from ``body`` only as the caller asks for more, so the
    audio flows through in constant memory.  ``max_body`` bounds the bytes
    read in all (``TooLarge``).
    """

    def __init__(self, content_type: str | None, body: Iterable[bytes], *, max_body: int) -> None:
        kind, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise InvalidInput("the body must be multipart/form-data with a boundary")
        self._body = iter(body)
        self._max, self._received, self._exhausted = max_body, 0, False
        self._events: deque[_Event] = deque()
        self._headers: dict[bytes, bytes] = {}
        self._name, self._value = bytearray(), bytearray()
        try:
            self._parser = MultipartParser(
                boundary,
                callbacks={
                    "on_part_begin": self._headers.clear,
                    "on_header_field": lambda d, s, e: self._name.extend(d[s:e]),
                    "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
                    "on_header_end": self._header_end,
                    "on_headers_finished": self._part_begins,
                    "on_part_data": lambda d, s, e: self._events.append(("data", bytes(d[s:e]))),
                    "on_part_end": lambda: self._events.append(("part_end", None)),
                    "on_end": lambda: self._events.append(("end", None)),
                },
            )
        except (ValueError, MultipartParseError):
            raise InvalidInput("the multipart boundary is malformed") from None

    def fields(self) -> dict[str, str]:
        """Every form field before the audio part, by name."""
        fields: dict[str, str] = {}
        while True:
            kind, name = self._next()
            if kind == "end":
                raise InvalidInput(f"the upload has no {AUDIO_PART} part")
            if kind != "part" or not isinstance(name, str):
                raise InvalidInput("malformed multipart body")
            if name == AUDIO_PART:
                return fields
            if name not in FIELDS:
                raise InvalidInput("the upload has a form field the vault does not know")
            if name in fields:
                raise InvalidInput(f"the field {name} is given twice")
            fields[name] = self._field_text(name)

    def audio(self) -> Iterator[bytes]:
        """The audio part's bytes; then the body must end (nothing may follow the audio)."""
        while True:
            kind, data = self._next()
            if kind == "part_end":
                break
            if kind != "data" or not isinstance(data, bytes):
                raise InvalidInput("malformed multipart body")
            yield data
        kind, _ = self._next()
        if kind != "end":
            raise InvalidInput(
                f"the {AUDIO_PART} part must be the last part, after every field, and the only one"
            )

    def _field_text(self, name: str) -> str:
        value = bytearray()
        while True:
            kind, data = self._next()
            if kind == "part_end":
                break
            if kind != "data" or not isinstance(data, bytes):
                raise InvalidInput("malformed multipart body")
            value += data
            if len(value) > MAX_FIELD_BYTES:
                raise InvalidInput(f"the field {name} is too long")
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"the field {name} is not UTF-8 text") from None

    def _next(self) -> _Event:
        while not self._events:
            if self._exhausted:
                raise InvalidInput("the upload ended before its closing boundary")
            chunk = next(self._body, None)
            if chunk is None:
                self._exhausted = True
                continue
            self._received += len(chunk)
            if self._received > self._max:
                raise TooLarge(f"the upload is larger than the {self._max / 1_000_000:g} MB limit")
            try:
                self._parser.write(chunk)
            except MultipartParseError:
                raise InvalidInput("malformed multipart body") from None
        return self._events.popleft()

    def _header_end(self) -> None:
        self._headers[bytes(self._name).strip().lower()] = bytes(self._value).strip()
        self._name.clear()
        self._value.clear()

    def _part_begins(self) -> None:
        kind, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        raw = params.get(b"name", b"")
        name = raw.decode("latin-1")
        if kind != b"form-data" or not name:
            raise MultipartParseError("a part without a form-data name")
        # Only known names are kept: an unknown one may hold anything, even an identifier.
        self._events.append(("part", name if name in FIELDS or name == AUDIO_PART else "?"))
