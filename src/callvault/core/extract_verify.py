"""The patient's log extract (loggutdrag, R18): its format and its offline verification.

An extract is one JSON document.  Each entry shows who (care unit, role,
where configured the user) did what (``how``) to which of the patient's
recordings, when, and carries the proof of it: the audit entry exactly as
logged (its canonical bytes) and its RFC 9162 inclusion proof against the
signed checkpoint the extract holds.  A search that listed the recording
adds a second proof: the search's entry carries, in ``detail.hits``, the
Merkle root of the recording ids it listed (sorted by their bytes, leaf
``SHA-256(0x00 ‖ uuid bytes)``), and ``hit`` proves the patient's recording
is one of them without naming the others.

:func:`verify_extract` needs only the document and the vault's verifier key
(stdlib and ``cryptography``), so a patient, a lawyer or a supervisory
authority can check an extract without the vault.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from callvault.core import merkle
from callvault.core.audit import AuditEvent
from callvault.core.errors import AuditTampered, InvalidInput
from callvault.core.notes import parse_and_verify_checkpoint, parse_verifier_key

FORMAT: Final = "callvault-log-extract/1"
HITS_KEY: Final = "hits"

# What an action means to the patient: a stable code, then English and Swedish.
HOW: Final[Mapping[str, tuple[str, str, str]]] = {
    "recording:search": ("search_hit", "listed in a search", "visad i en sökning"),
    "recording:view": ("view", "details viewed", "uppgifter visade"),
    "recording:play": ("play", "played", "uppspelad"),
    "recording:download": ("download", "downloaded", "nedladdad"),
    "recording:export": ("export", "exported", "exporterad"),
    "recording:ingest": ("ingest", "stored", "lagrad"),
    "recording:shred": ("erase", "erased", "raderad"),
    "recording:verify": ("verify", "integrity checked", "kontrollerad"),
    "recording:hold": ("hold", "legal hold", "bevarandebeslut"),
    "access:denied": ("denied", "access refused", "åtkomst nekad"),
    "alert:rate_limit": ("rate_limit", "refused: too many", "nekad: för många"),
    "subject:export": ("subject_export", "copy to the patient", "kopia till patienten"),
}


def how(action: str) -> str:
    """The stable code shown for ``action`` (the tag itself if none is defined)."""
    known = HOW.get(action)
    return known[0] if known else action


# --- the Merkle root of a search's hits ----------------------------------------------

# Hex written with the letters a-p: a root in an audit entry's detail must
# never hold a run of digits, which the log refuses as a possible identifier.
_LETTERS: Final = "abcdefghijklmnop"


def hit_leaf(recording_id: uuid.UUID) -> bytes:
    return merkle.leaf_hash(recording_id.bytes)


def hits_order(recording_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """The order hits are stored and hashed in: by the ids' bytes, duplicates dropped."""
    return sorted(set(recording_ids), key=lambda rid: rid.bytes)


def hits_root(ordered: list[uuid.UUID]) -> bytes:
    return merkle.root_from_leaf_hashes([hit_leaf(rid) for rid in ordered])


def encode_root(root: bytes) -> str:
    return "".join(_LETTERS[b >> 4] + _LETTERS[b & 15] for b in root)


def decode_root(text: object) -> bytes:
    if not isinstance(text, str) or len(text) != 64 or set(text) - set(_LETTERS):
        raise InvalidInput("malformed search hits root")
    return bytes(
        _LETTERS.index(text[i]) << 4 | _LETTERS.index(text[i + 1]) for i in range(0, 64, 2)
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- verification ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractReport:
    ok: bool
    entries: int
    checkpoint_size: int
    problems: list[str] = field(default_factory=list)


class _Bad(Exception):
    """One entry failed; the message names the check, never the content."""


def verify_extract(data: bytes, verifier_key: str) -> ExtractReport:
    """Check an extract against the vault's verifier key; never raises on bad input.

    Every entry must be an audit entry under the signed checkpoint, agree with
    the summary shown beside it and concern one of the extract's recordings
    (directly, or as a proven hit of a search).  ``InvalidInput`` only for a
    malformed verifier key.
    """
    key_name, public_key = parse_verifier_key(verifier_key)
    try:
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("format")
        recordings = {uuid.UUID(r["recording_id"]) for r in doc["recordings"]}
        entries = doc["entries"]
        note = doc["checkpoint"]
        if not isinstance(entries, list) or not isinstance(note, str):
            raise ValueError("entries")
    except (ValueError, KeyError, TypeError, AttributeError):
        return ExtractReport(False, 0, 0, ["not a callvault log extract (malformed document)"])
    try:
        cp = parse_and_verify_checkpoint(note, public_key, key_name)
    except AuditTampered as exc:
        return ExtractReport(False, len(entries), 0, [f"checkpoint: {exc.message}"])
    problems = []
    if cp.origin != doc.get("origin"):
        problems.append("checkpoint: origin differs from the extract's")
    show_users = doc.get("with_users") is True
    for number, entry in enumerate(entries, start=1):
        try:
            _check_entry(entry, cp.size, cp.root, recordings, show_users)
        except _Bad as exc:
            seq = entry.get("seq") if isinstance(entry, dict) else None
            problems.append(f"entry {number} (seq {seq}): {exc}")
    return ExtractReport(not problems, len(entries), cp.size, problems)


def _proof(value: object) -> list[bytes]:
    if not isinstance(value, list) or len(value) > 64:
        raise _Bad("malformed proof")
    try:
        return [base64.b64decode(p, validate=True) for p in value]
    except (binascii.Error, TypeError, ValueError):
        raise _Bad("malformed proof") from None


def _check_entry(
    entry: Any, size: int, root: bytes, recordings: set[uuid.UUID], show_users: bool
) -> None:
    if not isinstance(entry, dict):
        raise _Bad("malformed entry")
    body, seq = entry.get("entry"), entry.get("seq")
    if not isinstance(body, str) or isinstance(seq, bool) or not isinstance(seq, int):
        raise _Bad("malformed entry")
    raw = body.encode("utf-8")
    if not merkle.verify_inclusion(
        merkle.leaf_hash(raw), seq, size, _proof(entry.get("proof")), root
    ):
        raise _Bad(
            "inclusion proof does not lead to the signed checkpoint (entry or proof altered)"
        )
    try:
        event = AuditEvent.from_canonical(raw)
    except AuditTampered:
        raise _Bad("not a well-formed audit entry") from None
    shown = {
        "time": json.loads(raw)["time"],
        "care_unit": event.care_unit,
        "role": event.role,
        "user": event.actor if show_users else None,
        "how": how(event.action),
        "outcome": str(event.outcome),
    }
    for name, value in shown.items():
        if entry.get(name) != value:
            raise _Bad(f"the summary's {name} differs from the logged entry")
    try:
        rid = uuid.UUID(entry.get("recording_id"))
    except (TypeError, ValueError, AttributeError):
        raise _Bad("malformed recording id") from None
    if rid not in recordings:
        raise _Bad("names a recording the extract is not about")
    if event.action == "recording:search":
        _check_hit(entry.get("hit"), rid, event)
    elif event.recording_id != rid:
        raise _Bad("the logged entry concerns another recording")


def _check_hit(hit: Any, rid: uuid.UUID, event: AuditEvent) -> None:
    if not isinstance(hit, dict):
        raise _Bad("a search entry needs its hit proof")
    index, count = hit.get("index"), hit.get("size")
    if not isinstance(index, int) or not isinstance(count, int):
        raise _Bad("malformed hit proof")
    try:
        hits = decode_root(event.detail.get(HITS_KEY))
    except InvalidInput:
        raise _Bad("the search entry does not record its hits") from None
    if event.detail.get("results") != count:
        raise _Bad("hit proof size differs from the search's result count")
    if not merkle.verify_inclusion(hit_leaf(rid), index, count, _proof(hit.get("proof")), hits):
        raise _Bad("hit proof does not show the recording among the search's results")
