"""Shared test configuration.

* ``--soak`` runs the tests marked ``slow`` (long soak runs); without it they are skipped.
* ``postgres_url`` (session): a throwaway PostgreSQL 15 cluster started by `tests.pg`; tests that use
  it are skipped, with the reason, only when PostgreSQL cannot run here at all.
* Fixture plugins, available to every test by name without an import: `tests.common_fixtures` (``clock``)
  and `tests.county_fixtures` (``hub``, ``town``: a county and a township linked to it).
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import PostgresCluster, PostgresUnavailable, start_postgres

pytest_plugins = ["tests.common_fixtures", "tests.county_fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False, help="also run the long soak tests marked 'slow'")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip_slow = pytest.mark.skip(reason="soak test: run with --soak")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    try:
        cluster = start_postgres()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """URL of the cluster's default database. Tests that need isolation should call
    ``postgres_cluster.create_database()`` for a fresh one."""
    return postgres_cluster.url()
