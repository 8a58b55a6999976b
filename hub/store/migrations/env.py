"""Alembic environment: run by `shared.migrations.upgrade_to_head`, which hands over the connection."""
from shared.migrations import run_env

run_env()
