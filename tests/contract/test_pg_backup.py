"""`pg_dump`/`pg_restore` round trip of a township store on a real PostgreSQL 15, through
`shared.backup` and through `town-center backup/restore`; connection parameters, the password above
all, reach the tools only through the environment, never the command line."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

import shared.backup as backup
from shared.backup import BackupError, backup_database, pg_environment, restore_database
from shared.envelope import GENESIS
from shared.relay.ports import EnrollmentInfo, Outcome
from shared.signing import Signer
from tests.contract.test_town_store import rows_for
from tests.pg import PostgresCluster
from town_center.store import open_town_store

BIN = Path(sys.executable).parent


def _township_with_rows(url: str) -> tuple[Signer, list[tuple[int, bytes, int]]]:
    store = open_town_store(url)
    try:
        signer = Signer.generate()
        store.register_approved(signer.public_key, EnrollmentInfo(village_code="V1"), by="测试", now_ms=1)
        results = store.store_batch(signer.key_id, GENESIS, rows_for(signer, 25), receipt_time_ms=5_000)
        assert all(r.outcome is Outcome.STORED for r in results)
        store.set_meta("town_key_id", "k" * 32)
        return signer, store.ingested(signer.key_id)
    finally:
        store.close()


def _with_password(url: str, password: str) -> str:
    # The test cluster trusts every local connection, so any password is accepted; what matters here
    # is where the password travels.
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{quote(password, safe='')}@{host}"


def test_a_township_database_with_rows_round_trips_through_pg_dump_and_pg_restore(
        postgres_cluster: PostgresCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = postgres_cluster.create_database(f"town_{uuid.uuid4().hex[:10]}")
    signer, held = _township_with_rows(source)
    calls: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def spy(argv, **kwargs):
        calls.append((list(argv), dict(kwargs.get("env") or {})))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(backup.subprocess, "run", spy)
    secret = "s3cret-p@ss"
    out = tmp_path / "town.dump"
    assert backup_database(_with_password(source, secret), out) > 0
    assert out.read_bytes().startswith(b"PGDMP")          # custom format

    target = postgres_cluster.create_database(f"town_{uuid.uuid4().hex[:10]}")
    restore_database(_with_password(target, secret), out)
    assert calls and all(secret not in " ".join(argv) for argv, _ in calls)
    assert all(env.get("PGPASSWORD") == secret for _, env in calls)

    store = open_town_store(target)
    try:
        assert store.ingested(signer.key_id) == held
        agent = store.author(signer.key_id)
        assert agent is not None and agent.tip.seq == 25
        assert store.get_meta("town_key_id") == "k" * 32
    finally:
        store.close()

    with pytest.raises(BackupError, match="不是空的"):
        restore_database(target, out)


def test_town_center_backs_up_and_restores_a_postgresql_database_from_the_command_line(
        postgres_cluster: PostgresCluster, tmp_path: Path) -> None:
    source = postgres_cluster.create_database(f"town_{uuid.uuid4().hex[:10]}")
    signer, held = _township_with_rows(source)
    # The dump is sealed under a passphrase (a township's backups are encrypted like the laptop's).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"QUANCHENG_PASSPHRASE": "乡镇备份口令-pg-2026"}
    out = tmp_path / "town.dump"
    done = subprocess.run([str(BIN / "town-center"), "backup", "--db", source, "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    target = postgres_cluster.create_database(f"town_{uuid.uuid4().hex[:10]}")
    restored = subprocess.run([str(BIN / "town-center"), "restore", "--db", target, "--from", str(out)],
                              capture_output=True, text=True, timeout=120, env=env)
    assert restored.returncode == 0, restored.stderr
    store = open_town_store(target)
    try:
        assert store.ingested(signer.key_id) == held
    finally:
        store.close()
    again = subprocess.run([str(BIN / "town-center"), "restore", "--db", target, "--from", str(out)],
                           capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 2 and "不是空的" in again.stderr


def test_connection_parameters_of_a_url_become_pg_environment_variables() -> None:
    env, database = pg_environment("postgresql+psycopg://quan:p%40ss%3Dword@db.example:6543/town?sslmode=require",
                                   base={"PATH": "/usr/bin", "PGPASSWORD": "stale"})
    assert database == "town"
    assert env == {"PATH": "/usr/bin", "PGHOST": "db.example", "PGPORT": "6543", "PGUSER": "quan",
                   "PGPASSWORD": "p@ss=word", "PGSSLMODE": "require", "PGDATABASE": "town", "PGCONNECT_TIMEOUT": "10"}
    with pytest.raises(BackupError, match="不支持"):
        pg_environment("postgresql+psycopg://u@h/town?options=-c%20x", base={})
    with pytest.raises(BackupError, match="数据库名"):
        pg_environment("postgresql+psycopg://u@h/", base={})
