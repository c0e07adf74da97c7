"""The patient's log extract (loggutdrag, R18): who accessed the caller's recordings.

For a caller found by phone number or personnummer: every audit entry about
one of their recordings (search hits, views, plays, downloads, exports,
refusals), each with its inclusion proof against a signed checkpoint that
covers it, in the format of ``callvault.core.extract_verify``.  Producing
the extract writes one ``audit:extract`` entry first, then signs the head,
so the extract's own checkpoint covers that entry too.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from callvault.core import merkle
from callvault.core.access import Operation, Principal
from callvault.core.audit import Action
from callvault.core.errors import AuditUnavailable
from callvault.core.extract_verify import FORMAT, b64, hit_leaf, how
from callvault.core.notes import parse_and_verify_checkpoint
from callvault.core.recordings import RecordingRow
from callvault.core.rows import AuditRecord
from callvault.services import audit, subjects
from callvault.services.context import Vault
from callvault.services.guard import authorise


@dataclass(frozen=True)
class Extract:
    """An extract ready to hand over: ``document`` as JSON, see ``core.extract_verify``."""

    document: dict[str, Any]

    def json_bytes(self) -> bytes:
        return json.dumps(self.document, indent=1, ensure_ascii=False).encode("utf-8")

    @property
    def entries(self) -> list[dict[str, Any]]:
        return list(self.document["entries"])


def produce(
    vault: Vault,
    principal: Principal,
    *,
    caller: str | None = None,
    personnummer: str | None = None,
    with_users: bool = False,
) -> Extract:
    """The log extract of one caller; needs ``audit.extract`` (privacy officer).

    ``with_users`` names the user behind each access as well as the care
    unit (where the care provider's routine says so); the signed entries in
    the proofs always hold the user name, as logged.
    """
    authorise(vault, principal, Operation.AUDIT_EXTRACT, None)
    rows = subjects.recordings_of(
        vault, principal, Action.AUDIT_EXTRACT, caller=caller, personnummer=personnummer
    )
    audit.record_alone(
        vault,
        principal,
        Action.AUDIT_EXTRACT,
        detail={"recordings": len(rows), "with_users": with_users},
    )
    note = _checkpoint_covering_now(vault)
    cp = parse_and_verify_checkpoint(note, audit.public_key(vault), audit.key_name(vault))
    entries = _entries(vault, [r.id for r in rows], cp.size, with_users)
    return Extract(
        {
            "format": FORMAT,
            "origin": vault.origin,
            "verifier_key": audit.verifier_key(vault),
            "generated_at": _iso(vault.now()),
            "with_users": with_users,
            "recordings": [_recording(r) for r in rows],
            "checkpoint": note,
            "checkpoint_size": cp.size,
            "entries": entries,
        }
    )


def _checkpoint_covering_now(vault: Vault) -> str:
    note = audit.seal(vault)
    if note is not None:
        return note
    stored = vault.store.checkpoints()
    if not stored:
        raise AuditUnavailable("no checkpoint")
    return stored[-1][1]


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _recording(row: RecordingRow) -> dict[str, Any]:
    return {
        "recording_id": str(row.id),
        "started_at": _iso(row.started_at),
        "care_unit": row.care_unit,
        "state": row.state,
    }


def _entries(
    vault: Vault, ids: list[uuid.UUID], size: int, with_users: bool
) -> list[dict[str, Any]]:
    with vault.store.transaction(read_only=True) as tx:
        direct = tx.review.audit_of_recordings(ids, size)
        listings = tx.review.searches_listing(ids, size)
        hits = {seq: tx.review.search_hits_of(seq) for seq in {s for s, _ in listings}}
        hashes = tx.review.leaf_hashes(size)
    searches = {r.seq: r for seq in hits for r in vault.store.iter_audit(seq, seq + 1)}
    items: list[tuple[AuditRecord, uuid.UUID, dict[str, Any] | None]] = [
        (r, r.recording_id, None) for r in direct if r.recording_id is not None
    ]
    items += [(searches[seq], rid, _hit(hits[seq], rid)) for seq, rid in listings]
    items.sort(key=lambda item: (item[0].seq, item[1].bytes))
    proofs = merkle.inclusion_proofs(hashes, [record.seq for record, _, _ in items], size)
    return [
        _entry(record, rid, hit, proof, with_users)
        for (record, rid, hit), proof in zip(items, proofs, strict=True)
    ]


def _hit(listed: list[uuid.UUID], rid: uuid.UUID) -> dict[str, Any]:
    index = listed.index(rid)
    proof = merkle.inclusion_proof([hit_leaf(h) for h in listed], index, len(listed))
    return {"index": index, "size": len(listed), "proof": [b64(p) for p in proof]}


def _entry(
    record: AuditRecord,
    rid: uuid.UUID,
    hit: dict[str, Any] | None,
    proof: list[bytes],
    with_users: bool,
) -> dict[str, Any]:
    body = bytes(record.body)
    # Read, not re-validated: the entry was validated when written, and the
    # verifier decodes it strictly (AuditEvent.from_canonical) anyway.
    event = json.loads(body)
    return {
        "seq": record.seq,
        "time": event["time"],
        "care_unit": event["care_unit"],
        "role": event["role"],
        "user": event["actor"] if with_users else None,
        "how": how(event["action"]),
        "outcome": event["outcome"],
        "recording_id": str(rid),
        "entry": body.decode("ascii"),
        "proof": [b64(p) for p in proof],
        "hit": hit,
    }
