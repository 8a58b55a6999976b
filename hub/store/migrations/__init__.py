"""The county store's schema migrations (Alembic environment in this package; see `shared.migrations`).

Revisions: ``hub_0001`` the baseline (relay, county handling and tracking, deadline and console tables);
``hub_0002`` deciding by the rules (the 否定报备 register, delegations, the board's dossier flags).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import MetaData

from shared.errors import MigrationError
from shared.migrations import StoreMigrations

__all__ = ["HUB_MIGRATIONS"]


def _detect(tables: set[str]) -> str | None:
    """Which revision a county database made before migrations (by `create_all`) matches."""
    if "hub_meta" in tables:
        return "hub_0002" if "county_refusal" in tables else "hub_0001"
    if "agent_key" in tables or "town_meta" in tables:
        raise MigrationError("该数据库含有其他系统（如乡镇中心）的表，不是县级数据库；请检查数据库地址")
    return None


def _models() -> Sequence[MetaData]:
    from hub.evaluation import metadata as evaluation_metadata
    from hub.store.tables import metadata
    from shared.api.tokens import metadata as api_metadata
    from shared.console.store import metadata as console_metadata
    from shared.deadline_watch.store import metadata as deadline_metadata
    from shared.documents.adapters.sql import metadata as document_metadata
    from shared.documents.adapters.sql import received_metadata

    return (metadata, deadline_metadata, console_metadata, document_metadata, api_metadata, evaluation_metadata,
            received_metadata)


HUB_MIGRATIONS = StoreMigrations("hub", "县级数据库", Path(__file__).resolve().parent, _detect, _models)
