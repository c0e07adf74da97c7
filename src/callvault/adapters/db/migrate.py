"""Schema migrations with Alembic, run programmatically on an open engine.

Opening a vault checks the schema version with one query and imports Alembic
only when a migration is due: Alembic and Mako cost every command time and
memory that a vault ingesting a multi-gigabyte file cannot spare.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision in migrations/versions (a test keeps the two in step).
HEAD = "0006"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; one cheap query when already there."""
    if current_revision(engine) == HEAD:
        return
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")


def autogenerate(engine: Engine, message: str) -> None:
    """Developer aid: write a new revision from the schema module's changes."""
    from alembic import command

    with engine.begin() as conn:
        command.revision(alembic_config(conn), message=message, autogenerate=True)
