"""The passphrase-sealed key file provider and the passphrase sources."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from callvault.adapters.keys.keyfile import DEFAULT_KDF, KdfParams, KeyfileProvider
from callvault.adapters.keys.securefile import read_passphrase
from callvault.core.errors import (
    AlreadyExists,
    InsecureKeyFile,
    IntegrityError,
    InvalidInput,
    KeyUnavailable,
    StorageError,
    WrongPassphrase,
)
from callvault.core.ports import KeyProvider
from callvault.testing.keys import KeyProviderConformance

PASSPHRASE = b"correct horse battery staple"
FAST = KdfParams(time_cost=1, memory_kib=1024, parallelism=1)


class TestKeyfileConformance(KeyProviderConformance):
    @pytest.fixture
    def make_provider(self, tmp_path: Path) -> Callable[[], KeyProvider]:
        counter = iter(range(1, 1000))

        def make() -> KeyProvider:
            path = tmp_path / f"keys-{next(counter)}.json"
            return KeyfileProvider.create(path, PASSPHRASE, kdf_params=FAST)

        return make

    @pytest.fixture
    def reopen(self) -> Callable[[KeyProvider], KeyProvider]:
        def again(provider: KeyProvider) -> KeyProvider:
            assert isinstance(provider, KeyfileProvider)
            provider.close()
            return KeyfileProvider.open(provider.path, PASSPHRASE)

        return again


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "keys.json"


@pytest.fixture
def created(key_path: Path) -> KeyfileProvider:
    return KeyfileProvider.create(key_path, PASSPHRASE, kdf_params=FAST)


def _edit_envelope(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_bytes())
    edit(doc)
    path.write_text(json.dumps(doc))  # keeps the file's 0600 mode


def _flip_b64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


class TestCreateAndOpen:
    def test_created_file_is_owner_only_and_stores_format_and_argon2_parameters(
        self, created: KeyfileProvider, key_path: Path
    ) -> None:
        assert key_path.stat().st_mode & 0o777 == 0o600
        doc = json.loads(key_path.read_bytes())
        assert doc["format"] == "callvault-keyfile-1"
        assert {k: doc["kdf"][k] for k in ("name", "t", "m_kib", "p")} == {
            "name": "argon2id",
            "t": 1,
            "m_kib": 1024,
            "p": 1,
        }
        assert len(base64.b64decode(doc["kdf"]["salt"])) == 16
        assert len(base64.b64decode(doc["nonce"])) == 12
        assert KeyfileProvider.open(key_path, PASSPHRASE).kdf_params == FAST

    def test_file_holds_no_secret_in_the_clear_or_in_base64(
        self, created: KeyfileProvider, key_path: Path
    ) -> None:
        raw = key_path.read_bytes()
        for secret in (created.index_key(), created.audit_signing_seed()):
            assert secret not in raw
            assert base64.b64encode(secret)[:20] not in raw

    def test_default_argon2_parameters_are_used_stored_and_reopen(self, key_path: Path) -> None:
        started = time.perf_counter()
        provider = KeyfileProvider.create(key_path, PASSPHRASE)
        elapsed = time.perf_counter() - started
        doc = json.loads(key_path.read_bytes())
        assert (doc["kdf"]["t"], doc["kdf"]["m_kib"], doc["kdf"]["p"]) == (6, 65_536, 1)
        assert provider.kdf_params == DEFAULT_KDF
        assert KeyfileProvider.open(key_path, PASSPHRASE).index_key() == provider.index_key()
        assert elapsed < 10, "Argon2 defaults must stay interactive"

    def test_wrong_passphrase_raises_wrong_passphrase(
        self, created: KeyfileProvider, key_path: Path
    ) -> None:
        with pytest.raises(WrongPassphrase):
            KeyfileProvider.open(key_path, PASSPHRASE + b"!")

    @pytest.mark.parametrize("passphrase", [b"", "text"])
    def test_empty_or_non_bytes_passphrase_is_refused(
        self, key_path: Path, passphrase: Any
    ) -> None:
        with pytest.raises(InvalidInput):
            KeyfileProvider.create(key_path, passphrase, kdf_params=FAST)
        assert not key_path.exists()

    def test_open_with_empty_passphrase_is_refused(
        self, created: KeyfileProvider, key_path: Path
    ) -> None:
        with pytest.raises(InvalidInput):
            KeyfileProvider.open(key_path, b"")

    def test_create_refuses_an_existing_file_and_leaves_it_alone(
        self, created: KeyfileProvider, key_path: Path
    ) -> None:
        before = key_path.read_bytes()
        with pytest.raises(AlreadyExists):
            KeyfileProvider.create(key_path, PASSPHRASE, kdf_params=FAST)
        assert key_path.read_bytes() == before

    def test_missing_file_raises_key_unavailable(self, key_path: Path) -> None:
        with pytest.raises(KeyUnavailable, match="not found"):
            KeyfileProvider.open(key_path, PASSPHRASE)

    @pytest.mark.parametrize(
        "params",
        [KdfParams(0, 1024, 1), KdfParams(1, 4, 1), KdfParams(1, 1024, 0), KdfParams(1, 2**23, 1)],
    )
    def test_out_of_range_argon2_parameters_are_refused(
        self, key_path: Path, params: KdfParams
    ) -> None:
        with pytest.raises(InvalidInput):
            KeyfileProvider.create(key_path, PASSPHRASE, kdf_params=params)

    def test_change_passphrase_reseals_with_raised_parameters(
        self, created: KeyfileProvider, key_path: Path
    ) -> None:
        stronger = KdfParams(time_cost=2, memory_kib=2048, parallelism=1)
        created.change_passphrase(b"new passphrase", kdf_params=stronger)
        with pytest.raises(WrongPassphrase):
            KeyfileProvider.open(key_path, PASSPHRASE)
        reopened = KeyfileProvider.open(key_path, b"new passphrase")
        assert reopened.kdf_params == stronger
        assert reopened.index_key() == created.index_key()


class TestRefusesInsecureFiles:
    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o610])
    def test_group_or_other_permissions_are_refused(
        self, created: KeyfileProvider, key_path: Path, mode: int
    ) -> None:
        key_path.chmod(mode)
        with pytest.raises(InsecureKeyFile, match="chmod 600"):
            KeyfileProvider.open(key_path, PASSPHRASE)

    def test_symlink_to_a_good_key_file_is_refused(
        self, created: KeyfileProvider, key_path: Path, tmp_path: Path
    ) -> None:
        link = tmp_path / "link.json"
        link.symlink_to(key_path)
        with pytest.raises(InsecureKeyFile, match="symbolic link"):
            KeyfileProvider.open(link, PASSPHRASE)

    def test_fifo_and_directory_are_refused(self, tmp_path: Path) -> None:
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo, 0o600)
        directory = tmp_path / "dir"
        directory.mkdir(mode=0o700)
        for path in (fifo, directory):
            with pytest.raises(InsecureKeyFile, match="not a regular file"):
                KeyfileProvider.open(path, PASSPHRASE)

    @pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
    def test_directory_writable_by_others_is_refused(
        self, created: KeyfileProvider, key_path: Path, mode: int
    ) -> None:
        key_path.parent.chmod(mode)
        try:
            with pytest.raises(InsecureKeyFile, match="writable by others"):
                KeyfileProvider.open(key_path, PASSPHRASE)
            with pytest.raises(InsecureKeyFile):
                created.rotate()
        finally:
            key_path.parent.chmod(0o700)
        assert KeyfileProvider.open(key_path, PASSPHRASE).versions() == [1]


class TestTamperedEnvelope:
    @pytest.mark.parametrize(
        "edit",
        [
            lambda d: d.update(sealed=_flip_b64(d["sealed"])),
            lambda d: d.update(nonce=_flip_b64(d["nonce"])),
        ],
        ids=["sealed", "nonce"],
    )
    def test_altered_payload_raises_key_unavailable_saying_so(
        self, created: KeyfileProvider, key_path: Path, edit: Callable[[dict[str, Any]], None]
    ) -> None:
        _edit_envelope(key_path, edit)
        with pytest.raises(KeyUnavailable, match="altered or damaged") as caught:
            KeyfileProvider.open(key_path, PASSPHRASE)
        assert not isinstance(caught.value, WrongPassphrase)

    @pytest.mark.parametrize(
        "edit",
        [
            lambda d: d["kdf"].update(t=2),
            lambda d: d["kdf"].update(salt=_flip_b64(d["kdf"]["salt"])),
            lambda d: d.update(check=_flip_b64(d["check"])),
        ],
        ids=["time_cost", "salt", "check"],
    )
    def test_altered_kdf_header_raises_wrong_passphrase(
        self, created: KeyfileProvider, key_path: Path, edit: Callable[[dict[str, Any]], None]
    ) -> None:
        _edit_envelope(key_path, edit)
        with pytest.raises(WrongPassphrase):
            KeyfileProvider.open(key_path, PASSPHRASE)

    @pytest.mark.parametrize(
        "edit",
        [
            lambda d: d.update(format="callvault-keyfile-2"),
            lambda d: d["kdf"].update(m_kib=2**40),
            lambda d: d["kdf"].update(name="scrypt"),
            lambda d: d.update(extra=1),
            lambda d: d.pop("check"),
            lambda d: d.update(nonce="not base64!"),
            lambda d: d["kdf"].update(p=True),
        ],
        ids=["format", "huge_memory", "kdf_name", "extra_field", "no_check", "bad_b64", "bool"],
    )
    def test_malformed_header_raises_key_unavailable_without_running_argon2(
        self, created: KeyfileProvider, key_path: Path, edit: Callable[[dict[str, Any]], None]
    ) -> None:
        _edit_envelope(key_path, edit)
        with pytest.raises(KeyUnavailable) as caught:
            KeyfileProvider.open(key_path, PASSPHRASE)
        assert not isinstance(caught.value, WrongPassphrase)

    @pytest.mark.parametrize("content", [b"", b"not json", b"[]", b"\xff\xfe", b"{" * 2_000_000])
    def test_garbage_raises_key_unavailable(self, key_path: Path, content: bytes) -> None:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, content)
        os.close(fd)
        with pytest.raises(KeyUnavailable):
            KeyfileProvider.open(key_path, PASSPHRASE)

    def test_no_integrity_error_escapes_open(
        self, created: KeyfileProvider, key_path: Path
    ) -> None:
        original = key_path.read_bytes()
        for index in range(0, len(original), 7):
            tampered = bytearray(original)
            tampered[index] ^= 0x02
            key_path.write_bytes(bytes(tampered))
            try:
                KeyfileProvider.open(key_path, PASSPHRASE)
            except IntegrityError:  # pragma: no cover - the failure this test exists for
                pytest.fail(f"IntegrityError escaped for a change at byte {index}")
            except KeyUnavailable:
                pass


class TestAtomicRewrite:
    def test_reopen_after_rotate_and_retire_sees_both(
        self, created: KeyfileProvider, key_path: Path
    ) -> None:
        second = created.rotate()
        third = created.rotate()
        created.retire(second)
        reopened = KeyfileProvider.open(key_path, PASSPHRASE)
        assert reopened.versions() == [1, third]
        assert reopened.current_version() == third

    def test_leftover_temp_file_does_not_break_open_and_next_write_removes_it(
        self, created: KeyfileProvider, key_path: Path
    ) -> None:
        leftover = key_path.parent / f".{key_path.name}.0123456789abcdef.tmp"
        leftover.write_bytes(b'{"format": "half written')
        assert KeyfileProvider.open(key_path, PASSPHRASE).versions() == [1]
        created.rotate()
        assert not leftover.exists()
        assert KeyfileProvider.open(key_path, PASSPHRASE).versions() == [1, 2]

    def test_crash_before_rename_keeps_the_old_file_and_the_old_state(
        self, created: KeyfileProvider, key_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        before = key_path.read_bytes()

        def crash(*_: object) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "replace", crash)
        with pytest.raises(StorageError):
            created.rotate()
        monkeypatch.undo()
        assert key_path.read_bytes() == before
        assert created.versions() == [1]
        assert sorted(p.name for p in key_path.parent.iterdir()) == [key_path.name]


class TestReadPassphrase:
    @pytest.fixture
    def secret_file(self, tmp_path: Path) -> Iterator[Path]:
        path = tmp_path / "passphrase"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        yield path

    def test_environment_value_comes_first(self, secret_file: Path) -> None:
        secret_file.write_bytes(b"from file\n")
        env = {"CALLVAULT_PASSPHRASE": "from env", "CALLVAULT_PASSPHRASE_FILE": str(secret_file)}
        assert read_passphrase(env, lambda: "from prompt") == b"from env"

    @pytest.mark.parametrize(
        ("content", "expected"),
        [
            (b"s3cret\n", b"s3cret"),
            (b"s3cret\r\n", b"s3cret"),
            (b"s3cret", b"s3cret"),
            (b"a\n\n", b"a\n"),
        ],
    )
    def test_file_content_loses_one_trailing_newline(
        self, secret_file: Path, content: bytes, expected: bytes
    ) -> None:
        secret_file.write_bytes(content)
        env = {"CALLVAULT_PASSPHRASE_FILE": str(secret_file)}
        assert read_passphrase(env, lambda: "from prompt") == expected

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
    def test_passphrase_file_others_can_access_is_refused(
        self, secret_file: Path, mode: int
    ) -> None:
        secret_file.write_bytes(b"s3cret\n")
        secret_file.chmod(mode)
        with pytest.raises(InsecureKeyFile):
            read_passphrase({"CALLVAULT_PASSPHRASE_FILE": str(secret_file)}, None)

    def test_missing_passphrase_file_raises_key_unavailable(self, tmp_path: Path) -> None:
        with pytest.raises(KeyUnavailable):
            read_passphrase({"CALLVAULT_PASSPHRASE_FILE": str(tmp_path / "absent")}, None)

    def test_prompt_is_used_when_no_variable_is_set(self) -> None:
        assert read_passphrase({}, lambda: "typed in") == b"typed in"

    def test_no_source_raises_key_unavailable_naming_the_remedy(self) -> None:
        with pytest.raises(KeyUnavailable, match="CALLVAULT_PASSPHRASE_FILE or run interactively"):
            read_passphrase({"HOME": "/root"}, None)

    @pytest.mark.parametrize("source", ["env", "file", "prompt"])
    def test_empty_passphrase_is_refused(self, secret_file: Path, source: str) -> None:
        secret_file.write_bytes(b"\n")
        env = {
            "env": {"CALLVAULT_PASSPHRASE": ""},
            "file": {"CALLVAULT_PASSPHRASE_FILE": str(secret_file)},
            "prompt": {},
        }[source]
        with pytest.raises(InvalidInput):
            read_passphrase(env, lambda: "")


class TestSeveralProcesses:
    """Each process holds its own provider on the one key file."""

    def test_a_rotation_elsewhere_is_seen_before_the_next_wrap(self, created, key_path):
        other = KeyfileProvider.open(key_path, PASSPHRASE)
        new_version = created.rotate()
        version, blob = other.wrap(b"bucket key", b"ad")
        assert version == new_version == other.current_version()
        assert created.unwrap(version, blob, b"ad") == b"bucket key"

    def test_a_retirement_elsewhere_is_seen(self, created, key_path):
        other = KeyfileProvider.open(key_path, PASSPHRASE)
        old, blob = other.wrap(b"bucket key", b"ad")
        created.rotate()
        created.retire(old)
        with pytest.raises(KeyUnavailable):
            other.unwrap(old, blob, b"ad")
        assert other.versions() == created.versions()

    def test_a_resealed_file_stops_the_stale_process(self, created, key_path):
        other = KeyfileProvider.open(key_path, PASSPHRASE)
        created.change_passphrase(b"a different passphrase", kdf_params=FAST)
        with pytest.raises(KeyUnavailable, match="resealed"):
            other.wrap(b"x", b"ad")
