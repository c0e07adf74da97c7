"""Throwaway PostgreSQL databases for tests, on the server at 127.0.0.1:5432.

The server is part of the test environment (trust authentication, user
``postgres``).  Each :func:`throwaway_database` creates a database with a
random name, hands out its SQLAlchemy URL and drops it afterwards, even if
connections to it are still open.  An unreachable server is a test
*failure* with a clear message, never a skip: a suite that silently stops
testing PostgreSQL would look green while testing half the backends::

    @pytest.fixture
    def database_url():
        with throwaway_database() as url:
            yield url
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"
ADMIN_DATABASE = "postgres"
NAME_PREFIX = "callvault_test_"


def url_for(database: str) -> str:
    """The SQLAlchemy URL of ``database`` on the test server (psycopg 3 driver)."""
    return f"postgresql+psycopg://{USER}@{HOST}:{PORT}/{database}"


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(
            host=HOST,
            port=PORT,
            user=USER,
            dbname=ADMIN_DATABASE,
            autocommit=True,
            connect_timeout=10,
        )
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required at {HOST}:{PORT} (user {USER}, trust auth) "
            f"and could not be reached: {exc}",
            pytrace=False,
        )


def create_database() -> str:
    """Create an empty, uniquely named database; return its name."""
    name = NAME_PREFIX + secrets.token_hex(8)
    with _admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str) -> None:
    """Drop ``name``, closing any connection still open to it (PostgreSQL 13+)."""
    with _admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A fresh database for the duration of the block; yields its URL."""
    name = create_database()
    try:
        yield url_for(name)
    finally:
        drop_database(name)
