"""A caller's Art. 15 copy: ZIP inside an age file, audio never in clear on disk (R21, R4, R15)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pty
import sqlite3
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from callvault.core import agefile
from callvault.core.audit import Action, Outcome
from callvault.core.errors import (
    AccessDenied,
    AuditUnavailable,
    IntegrityError,
    InvalidInput,
    NotFound,
)
from callvault.services import audit, breach, exports, extracts
from callvault.testing.scan import find_leaks, identifier_forms
from privacy_world import CALLER, CALLER_E164, PNR, World, database_url, make_world

FAST = 10  # scrypt work factor for tests; exports use age's 18


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    for url in database_url("sqlite", tmp_path):
        with make_world(tmp_path, url) as w:
            yield w


def _open(path: Path, passphrase: str) -> zipfile.ZipFile:
    with path.open("rb") as fh:
        data = b"".join(agefile.decrypt(fh, passphrase))
    return zipfile.ZipFile(io.BytesIO(data))


def test_export_holds_every_recording_as_stored_with_a_manifest(world):
    """R21: open formats, hashes in the manifest, one subject:export entry per recording."""
    out = world.tmp / "copy.zip.age"
    result = exports.export_to_file(
        world.vault, world.who("privacy.p"), out, caller=CALLER, work_factor=FAST
    )
    assert result.recordings == 3 and result.size == out.stat().st_size
    assert out.stat().st_mode & 0o777 == 0o600
    assert not out.read_bytes().startswith(b"PK") and b"RIFF" not in out.read_bytes()
    archive = _open(out, result.passphrase)
    manifest = json.loads(archive.read("manifest.json"))
    assert {r["recording_id"] for r in manifest["recordings"]} == {str(i) for i in world.mine}
    for entry in manifest["recordings"]:
        audio = archive.read(entry["file"])
        assert audio == world.audio[uuid.UUID(entry["recording_id"])]
        assert hashlib.sha256(audio).hexdigest() == entry["sha256"]
        assert entry["caller"] == CALLER_E164
    entries = [e.event for e in audit.tail(world.vault, world.who("privacy.p"), 10)]
    exported = [e.recording_id for e in entries if e.action == Action.SUBJECT_EXPORT]
    assert sorted(exported) == sorted(world.mine)


def test_export_leaves_no_plaintext_or_identifier_on_disk(world):
    """R3, R4: the decrypted audio and the caller's number never reach a file in clear."""
    out = world.tmp / "copy.zip.age"
    exports.export_to_file(
        world.vault, world.who("privacy.p"), out, caller=CALLER, work_factor=FAST
    )
    needles = identifier_forms(CALLER_E164, PNR)
    assert find_leaks([world.tmp / "blobs", world.tmp / "data", out], needles) == []


def test_the_standard_age_tool_opens_the_export(world):
    """The recipient needs only `age -d` and the passphrase (not callvault)."""
    out = world.tmp / "copy.zip.age"
    result = exports.export_to_file(
        world.vault, world.who("privacy.p"), out, caller=CALLER, work_factor=FAST
    )
    opened = world.tmp / "copy.zip"
    pid, fd = pty.fork()
    if pid == 0:  # age reads a passphrase only from a terminal
        os.execvp("age", ["age", "-d", "-o", str(opened), str(out)])
    time.sleep(0.3)
    os.write(fd, result.passphrase.encode() + b"\n")
    while True:
        try:
            if not os.read(fd, 1024):
                break
        except OSError:
            break
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "manifest.json" in zipfile.ZipFile(opened).namelist()


def test_a_wrong_passphrase_or_altered_file_does_not_open(world):
    out = world.tmp / "copy.zip.age"
    result = exports.export_to_file(
        world.vault, world.who("privacy.p"), out, caller=CALLER, work_factor=FAST
    )
    with pytest.raises(InvalidInput, match="passphrase"):
        _open(out, "wrong-passphrase")
    data = bytearray(out.read_bytes())
    data[-100] ^= 1
    with pytest.raises(IntegrityError):
        b"".join(agefile.decrypt(io.BytesIO(bytes(data)), result.passphrase))
    with pytest.raises(IntegrityError):  # truncated at a chunk boundary
        b"".join(agefile.decrypt(io.BytesIO(bytes(out.read_bytes()[:-1])), result.passphrase))


@pytest.mark.parametrize("name", ["boss.a", "nurse.a", "reviewer.r", "admin.x"])
def test_only_the_privacy_officer_may_export_and_nothing_is_written(world, name):
    out = world.tmp / "copy.zip.age"
    with pytest.raises(AccessDenied):
        exports.export_to_file(world.vault, world.who(name), out, caller=CALLER)
    assert not out.exists()


def test_unknown_caller_is_refused_logged_and_writes_nothing(world):
    out = world.tmp / "copy.zip.age"
    with pytest.raises(NotFound):
        exports.export_to_file(world.vault, world.who("privacy.p"), out, caller="070-999 99 99")
    assert not out.exists()
    last = audit.tail(world.vault, world.who("privacy.p"), 2)[0].event
    assert (last.action, last.outcome) == (Action.SUBJECT_EXPORT, Outcome.FAILED)


def test_an_existing_output_file_is_never_overwritten(world):
    out = world.tmp / "copy.zip.age"
    out.write_bytes(b"keep me")
    with pytest.raises(InvalidInput):
        exports.export_to_file(world.vault, world.who("privacy.p"), out, caller=CALLER)
    assert out.read_bytes() == b"keep me"


def test_a_damaged_object_stops_the_export_before_anything_is_written(world):
    """R23: integrity is checked before the first entry and the first byte."""
    with world.vault.store.transaction(read_only=True) as tx:
        row = tx.get_recording(world.mine[1])
    assert row is not None
    name = next(p for p in (world.tmp / "blobs").rglob(row.object_name + "*") if p.is_file())
    name.write_bytes(name.read_bytes()[:-1] + b"\x00")
    out = world.tmp / "copy.zip.age"
    with pytest.raises(IntegrityError):
        exports.export_to_file(world.vault, world.who("privacy.p"), out, caller=CALLER)
    assert not out.exists()


def _refuse_audit_writes(world: World) -> None:
    with sqlite3.connect(world.tmp / "data" / "vault.db") as conn:
        conn.execute(
            "CREATE TRIGGER audit_off BEFORE INSERT ON audit_entries "
            "BEGIN SELECT RAISE(ABORT, 'audit disabled'); END"
        )


def test_without_a_log_entry_there_is_no_export_no_extract_no_report(world):
    """R15: if the entry cannot be written, nothing leaves the vault."""
    _refuse_audit_writes(world)
    officer = world.who("privacy.p")
    out = world.tmp / "copy.zip.age"
    with pytest.raises(AuditUnavailable):
        exports.export_to_file(world.vault, officer, out, caller=CALLER, work_factor=FAST)
    assert not out.exists()
    with pytest.raises(AuditUnavailable):
        extracts.produce(world.vault, officer, caller=CALLER)
    with pytest.raises(AuditUnavailable):
        breach.breach_report(world.vault, officer, actor="boss.a", show_callers=True)
