"""The village laptop's schema migrations (Alembic environment in this package; see `shared.migrations`).

Revisions: ``village_0001`` the baseline (the laptop's schema, unchanged since the first release);
``village_0002`` the written documents' numbering and archive.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import MetaData

from shared.errors import MigrationError
from shared.migrations import StoreMigrations

__all__ = ["VILLAGE_MIGRATIONS"]


def _detect(tables: set[str]) -> str | None:
    """Which revision a laptop database made before migrations (by `create_all`) matches."""
    if "ledger" in tables:
        return "village_0001"
    if "agent_key" in tables:
        raise MigrationError("该文件是乡镇或县级数据库，不是代办员电脑的数据库；请检查文件路径")
    return None


def _models() -> Sequence[MetaData]:
    from shared.documents.adapters.sql import metadata as document_metadata
    from village_agent.store import metadata

    return (metadata, document_metadata)


VILLAGE_MIGRATIONS = StoreMigrations("village", "本机数据库", Path(__file__).resolve().parent, _detect, _models)
