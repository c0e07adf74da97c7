"""The lifecycle port (policies, holds, shredding) on SQLite and PostgreSQL (R19-R21)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from callvault.adapters.db.store import SqlMetadataStore
from callvault.testing import postgres
from callvault.testing.metadata_lifecycle import LifecycleConformance
from callvault.testing.metadata_support import StoreFactory


class TestSqliteLifecycle(LifecycleConformance):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> StoreFactory:
        return lambda: SqlMetadataStore.open(f"sqlite:///{tmp_path / 'vault.db'}")

    @pytest.fixture
    def lose_database(self) -> Callable[[], None]:
        return lambda: None


class TestPostgresLifecycle(LifecycleConformance):
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
