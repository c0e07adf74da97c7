"""The searches of an archive's size use an index, on SQLite and on PostgreSQL.

A few thousand recordings are loaded the way the scale benchmark loads them
(bench/bench_scale.py); each kind of search then runs once through the real
search service, and the very SELECT it issued is explained.  A plan that
reads the recordings table whole, or not through the index the kind needs,
fails: a schema or query change cannot silently turn a caller lookup or a
date page into a table scan (docs/scale.md).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# `bench` lives at the repository root, beside src/; pytest puts only tests/ on the path.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bench_scale as scale  # noqa: E402

ROWS, CALLERS = 3000, 60


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, scale.Population]:
    base = tmp_path_factory.mktemp("scale")
    keys = scale.make_keys(base / "keys")
    return base, keys, scale.Population(1177, keys.index_key(), ROWS, CALLERS)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def loaded(
    request: pytest.FixtureRequest, population: tuple[Path, object, scale.Population]
) -> Iterator[scale.Loaded]:
    base, keys, pop = population
    work = base / request.param
    work.mkdir()
    with scale.loaded(request.param, work, keys, pop, keep=20) as db:
        yield db


@pytest.mark.parametrize("kind", scale.KINDS, ids=lambda k: k.label)
def test_each_search_kind_reads_recordings_through_its_index(
    loaded: scale.Loaded, population: tuple[Path, object, scale.Population], kind: scale.Kind
) -> None:
    _, _, pop = population
    target = pop.targets_for(kind.who)[0]
    found, statement = scale.issued(loaded.vault, kind, target)
    assert (found > 0) == (kind.who != "nobody")
    plan = loaded.backend.explain(*statement)
    assert not scale.full_scan(plan), plan
    assert kind.index in plan, plan


def test_plan_check_fails_once_the_caller_indexes_are_gone(
    tmp_path: Path, population: tuple[Path, object, scale.Population]
) -> None:
    """The guard above can fail: without (caller, time) the lookup sorts all of a
    caller's calls, and without any caller index it scans the table."""
    _, keys, pop = population
    kind = scale.KINDS[0]
    with scale.loaded("sqlite", tmp_path, keys, pop, keep=5) as db:
        _, statement = scale.issued(db.vault, kind, pop.targets[0])
        assert scale.plan_uses(db.backend.explain(*statement), kind.index)
        db.conn.execute(f"DROP INDEX {kind.index}")
        sorting = db.backend.explain(*statement)
        db.conn.execute("DROP INDEX ix_recordings_caller")
        scanning = db.backend.explain(*statement)
    assert not scale.plan_uses(sorting, kind.index) and "TEMP B-TREE FOR ORDER BY" in sorting
    assert scale.full_scan(scanning), scanning
