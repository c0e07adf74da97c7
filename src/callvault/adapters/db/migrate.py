"""Schema migrations with Alembic, run programmatically on an open engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine_connection: object | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = engine_connection
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op when already there."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")


def autogenerate(engine: Engine, message: str) -> None:
    """Developer aid: write a new revision from the schema module's changes."""
    with engine.begin() as conn:
        command.revision(alembic_config(conn), message=message, autogenerate=True)
