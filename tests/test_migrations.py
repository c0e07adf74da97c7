from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from callvault.adapters.db import migrate


def test_head_constant_matches_the_newest_migration():
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert script.get_current_head() == migrate.HEAD


def test_upgrade_creates_the_schema_once_and_is_then_a_no_op(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.HEAD
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.HEAD
