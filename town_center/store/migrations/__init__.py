"""The township store's schema migrations (Alembic environment in this package; see `shared.migrations`).

Revisions: ``town_0001`` the township as released at 3686c89 (relay, handling, deadline and console
tables); ``town_0002`` the county link (``county_*`` tables and ``county_notice``).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import MetaData

from shared.errors import MigrationError
from shared.migrations import StoreMigrations

__all__ = ["TOWN_MIGRATIONS"]


def _detect(tables: set[str]) -> str | None:
    """Which revision a township database made before migrations matches (it was made by `create_all`,
    so its tables are all of one version's)."""
    if "town_meta" in tables:
        return "town_0002" if "county_ledger" in tables else "town_0001"
    if "agent_key" in tables or "hub_meta" in tables:
        raise MigrationError("该数据库含有其他系统（如县级中心）的表，不是乡镇数据库；请检查数据库地址")
    return None


def _models() -> Sequence[MetaData]:
    from shared.api.tokens import metadata as api_metadata
    from shared.console.store import metadata as console_metadata
    from shared.deadline_watch.store import metadata as deadline_metadata
    from shared.documents.adapters.sql import metadata as document_metadata
    from shared.documents.adapters.sql import received_metadata
    from town_center.front_desk.tables import metadata as front_desk_metadata
    from town_center.store import matter_tables as _matter_tables  # noqa: F401 - registers the handling tables
    from town_center.store.evaluation_tables import metadata as evaluation_metadata
    from town_center.store.tables import metadata

    return (metadata, deadline_metadata, console_metadata, document_metadata, api_metadata, front_desk_metadata,
            evaluation_metadata, received_metadata)


TOWN_MIGRATIONS = StoreMigrations("town", "乡镇数据库", Path(__file__).resolve().parent, _detect, _models)
