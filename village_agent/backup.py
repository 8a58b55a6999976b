"""Backup and restore of the laptop's data folder (`village-agent backup` / `village-agent restore`).

A backup is one encrypted file (`shared.backup`, format `quancheng-backup/1`, under the agent's
passphrase unless another is given) holding the folder's files: the database, copied with SQLite's
online backup API so it is consistent while the agent keeps working, the device key file (itself
encrypted under the passphrase), the vault key and the settings. Logs are not included.

The database inside a backup is marked "recovering" when the copy is taken, not when it is restored:
whoever unpacks it, however, the laptop it lands on signs nothing until it has fetched back from the
township the records signed after the backup (docs/ARCHITECTURE.md, invariant 7: reusing their
seqs would be a fork).
See `shared.relay.sql_outbox.SqlOutbox.finish_recovery`.
"""
from __future__ import annotations

import json
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shared.backup import BackupError, read_encrypted_backup, sqlite_online_backup, write_encrypted_backup
from shared.keys import DEFAULT_SCRYPT_N, load_key_file
from village_agent.config import AgentConfig, Paths
from village_agent.errors import NotInitializedError
from village_agent.store import RECOVERING_META, AgentStore

__all__ = ["BACKUP_KIND", "BackupSummary", "backup_agent", "restore_agent"]

BACKUP_KIND = "village-agent"
# The live database's files are replaced by the snapshot; logs stay with the machine that wrote them.
_NOT_COPIED_SUFFIXES = ("-wal", "-shm", "-journal", ".tmp", ".part")


@dataclass(frozen=True)
class BackupSummary:
    file: Path
    size_bytes: int
    key_id: str
    ledger_seq: int
    files: list[str]


def _mark_recovering(at_ms: int):
    def prepare(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                     (RECOVERING_META, str(at_ms)))
    return prepare


def backup_agent(root: Path, passphrase: str, out: Path, *, backup_passphrase: str | None = None, now_ms: int,
                 scrypt_n: int = DEFAULT_SCRYPT_N) -> BackupSummary:
    """Write an encrypted backup of the data folder `root` to the new file `out`. `passphrase` must be
    the agent's (checked by unlocking the device key); the backup is sealed under `backup_passphrase`,
    by default the same one. Safe while the agent runs."""
    paths = Paths(root)
    if not paths.config.exists() or not paths.key.exists() or not paths.database.exists():
        raise NotInitializedError(f"数据目录 {root} 尚未初始化，没有可备份的数据")
    signer = load_key_file(paths.key, passphrase)   # a wrong passphrase stops here, before anything is written
    config = AgentConfig.load(paths)
    live = AgentStore(paths.database)   # also runs whatever the store does on open, so the copy is current
    try:
        if live.get_meta("key_id") != signer.key_id:
            raise NotInitializedError("数据库与本设备密钥不匹配，不能备份")
        tip = live.tip()
    finally:
        live.close()
    # The snapshot sits inside the data folder for the moment it exists: it is as private as the database.
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=root) as tmp:
        snapshot = Path(tmp) / paths.database.name
        sqlite_online_backup(paths.database, snapshot, prepare=_mark_recovering(now_ms))
        files = [(paths.database.name, snapshot)]
        for path in sorted(root.iterdir()):
            name = path.name
            if (not path.is_file() or name.startswith(".") or name.startswith(paths.database.name)
                    or name.startswith(paths.log.name) or name.endswith(_NOT_COPIED_SUFFIXES)):
                continue
            files.append((name, path))
        size = write_encrypted_backup(
            out, files, backup_passphrase or passphrase, kind=BACKUP_KIND, scrypt_n=scrypt_n,
            # The header is readable without the passphrase: ids and counts only, no names.
            info={"key_id": signer.key_id, "village_code": config.village_code, "ledger_seq": str(tip.seq)})
    return BackupSummary(out, size, signer.key_id, tip.seq, [name for name, _ in files])


@dataclass(frozen=True)
class RestoreSummary:
    root: Path
    key_id: str
    ledger_seq: int
    created_at_ms: int
    files: list[str]


def restore_agent(src: Path, root: Path, passphrase: str) -> RestoreSummary:
    """Restore the backup `src` (sealed under `passphrase`) into `root`, which must not exist or be
    empty. The restored laptop is recovering: it signs nothing until it has synced with the township."""
    info = read_encrypted_backup(src, passphrase, root, kind=BACKUP_KIND)
    paths = Paths(root)
    for required in (paths.config, paths.key, paths.database):
        if not required.exists():
            raise BackupError(f"备份中缺少 {required.name}，不是完整的代办员备份")
    try:
        key_id = str(json.loads(paths.key.read_text(encoding="utf-8"))["key_id"])
    except (OSError, ValueError, KeyError) as exc:
        raise BackupError("备份中的设备密钥文件无法读取") from exc
    store = AgentStore(paths.database)
    try:
        if store.get_meta("key_id") != key_id:
            raise BackupError("备份中的数据库与设备密钥不匹配")
        if not store.recovering():
            # Backups always carry the mark; one made some other way gets it here before any use.
            store.set_meta(RECOVERING_META, str(info.created_at_ms or 1))
        tip = store.tip()
    finally:
        store.close()
    return RestoreSummary(root, key_id, tip.seq, info.created_at_ms, info.files)
