"""The metadata store: the conformance suite on SQLite and PostgreSQL, then
adapter-specific failures (unreachable or unsupported URLs)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from callvault.adapters.db.store import SqlMetadataStore
from callvault.core.errors import AlreadyExists, ConfigError, StorageError
from callvault.testing import postgres
from callvault.testing.metadata import MetadataStoreConformance
from callvault.testing.metadata_support import T0, StoreFactory


class TestSqliteMetadataStore(MetadataStoreConformance):
    @pytest.fixture
    def db_path(self, tmp_path: Path) -> Path:
        return tmp_path / "data" / "vault.db"

    @pytest.fixture
    def opened(self) -> list[SqlMetadataStore]:
        return []

    @pytest.fixture
    def make_store(self, db_path: Path, opened: list[SqlMetadataStore]) -> StoreFactory:
        db_path.parent.mkdir()

        def make() -> SqlMetadataStore:
            opened.append(SqlMetadataStore.open(f"sqlite:///{db_path}"))
            return opened[-1]

        return make

    @pytest.fixture
    def lose_database(self, db_path: Path, opened: list[SqlMetadataStore]) -> Callable[[], None]:
        def lose() -> None:
            # An open SQLite file outlives its removal, so the handles' pooled
            # connections are closed first, as a restart would; the handles
            # themselves stay in use and must reconnect to nothing.
            for store in opened:
                store.close()
            shutil.rmtree(db_path.parent)

        return lose


class TestPostgresMetadataStore(MetadataStoreConformance):
    @pytest.fixture
    def database(self) -> Iterator[str]:
        name = postgres.create_database()
        try:
            yield name
        finally:
            postgres.drop_database(name)

    @pytest.fixture
    def make_store(self, database: str) -> StoreFactory:
        return lambda: SqlMetadataStore.open(postgres.url_for(database))

    @pytest.fixture
    def lose_database(self, database: str) -> Callable[[], None]:
        return lambda: postgres.drop_database(database)


# -- adapter-specific: opening ----------------------------------------------------


def test_unreachable_postgresql_server_raises_storage_error() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(StorageError) as caught:
        SqlMetadataStore.open("postgresql://postgres@127.0.0.1:1/callvault")
    assert "127.0.0.1" not in str(caught.value)


def test_missing_postgresql_database_raises_storage_error() -> None:
    with pytest.raises(StorageError):
        SqlMetadataStore.open(postgres.url_for("callvault_test_does_not_exist"))


def test_sqlite_file_in_missing_directory_raises_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        SqlMetadataStore.open(f"sqlite:///{tmp_path}/absent/vault.db")


@pytest.mark.parametrize("url", ["mysql://root@127.0.0.1/x", "not a url", "oracle://x"])
def test_unsupported_database_url_raises_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        SqlMetadataStore.open(url)


def test_unique_violation_message_carries_no_stored_values(tmp_path: Path) -> None:
    # PostgreSQL quotes the clashing key in its message; ours must not.
    with postgres.throwaway_database() as url:
        store = SqlMetadataStore.open(url)
        try:
            with store.transaction() as tx:
                tx.set_info("vault_id", "v")
                kek = tx.insert_bucket_kek("2019-02", "record", 1, 1, b"w", T0)
            with pytest.raises(AlreadyExists) as caught, store.transaction() as tx:
                tx.insert_bucket_kek("2019-02", "record", 1, 1, b"w", T0)
        finally:
            store.close()
    assert str(caught.value) == "record already exists"
    assert kek.id >= 1


def test_unreachable_test_server_fails_the_test_instead_of_skipping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgres, "PORT", 1)
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL is required"):
        postgres.create_database()
