"""Backups of a tier's data: SQLite's online backup, `pg_dump`/`pg_restore`, and an encrypted archive.

* `sqlite_online_backup` copies a live SQLite database with SQLite's backup API in one step: a
  consistent snapshot taken under a read transaction, so a store that keeps writing (WAL) is neither
  stopped nor copied half-written, as a plain file copy could be.
* `backup_database` / `restore_database` pick SQLite or PostgreSQL from a store's URL. PostgreSQL is
  dumped with `pg_dump --format=custom` and restored with `pg_restore` into an *empty* database only.
  Connection parameters go to the tools through `PG*` environment variables, never on the command
  line (where `ps` shows them to every user of the machine).
* `backup_store_encrypted` / `restore_store_encrypted`: a township's or county's database backup
  (either of the above) sealed like the laptop's, under the tier's passphrase: a copied backup file
  reveals nothing without it. Every backup file is created 0600, whatever the umask.
* `write_encrypted_backup` / `read_encrypted_backup`: a folder's files in one file under a passphrase
  (the village laptop's backup, carried on a USB stick). Format `quancheng-backup/1`::

      b"QCBACKUP" | u32 header length | header (JSON) | chunk* ; chunk = u32 length | AES-256-GCM ciphertext

  The header names the KDF (scrypt, salt, parameters), a key-check value, and what the backup holds.
  The plaintext (a tar stream of the files) is cut into chunks, each sealed with AES-GCM under a nonce
  of (random prefix, chunk counter, last-chunk flag) and the whole header as associated data: a changed
  header, a changed, reordered or dropped chunk, a truncated file or trailing bytes all fail to decrypt.
  The key-check value tells a wrong passphrase apart from a tampered file. Everything is decrypted and
  verified into a temporary file before the first restored file is written.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from shared.errors import BackupError
from shared.os_errors import os_error_zh

__all__ = [
    "BackupError", "BackupInfo", "BACKUP_FORMAT", "sqlite_online_backup", "sqlite_path_of", "is_sqlite_url",
    "backup_database", "restore_database", "write_encrypted_backup", "read_encrypted_backup", "find_pg_tool",
    "pg_environment", "backup_store_encrypted", "restore_store_encrypted",
]

BACKUP_FORMAT = "quancheng-backup/1"
MAGIC = b"QCBACKUP"
CHUNK_BYTES = 1024 * 1024
DEFAULT_SCRYPT_N = 2**15
MAX_HEADER_BYTES = 64 * 1024
PG_BIN_FALLBACK = Path("/usr/lib/postgresql/15/bin")
# A dump or restore of a county's database may take a while; it must still end (docs/ARCHITECTURE.md, invariant 10).
PG_TIMEOUT_S = 6 * 3600


# ---------------------------------------------------------------- files


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # not every file system (or OS) lets a directory be opened; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _refuse_existing(out: Path) -> None:
    if out.exists():
        raise BackupError(f"文件已存在，不会覆盖：{out}")
    if not out.parent.is_dir():
        raise BackupError(f"目标文件夹不存在：{out.parent}（U 盘是否已插好？）")


@contextmanager
def _part_file(out: Path) -> Iterator[Path]:
    """Write beside `out` under a temporary name; rename into place only when complete."""
    part = out.with_name(f".{out.name}.part")
    part.unlink(missing_ok=True)
    # Created owner-only before any byte is written: a backup holds everything the database does.
    os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(part, 0o600)
    try:
        yield part
        with open(part, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(part, 0o600)   # whatever a tool writing into it did
        os.replace(part, out)
        _fsync_dir(out.parent)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- SQLite


def sqlite_online_backup(src: Path, out: Path, *, prepare: Callable[[sqlite3.Connection], None] | None = None) -> int:
    """Copy the live SQLite database `src` to the new file `out` (a self-contained database, no WAL);
    returns its size in bytes. Safe while other connections or processes write `src`. `prepare` may
    change the copy (never `src`) before it is checked and appears under its name."""
    if not src.is_file():
        raise BackupError(f"找不到数据库文件：{src}")
    _refuse_existing(out)
    with _part_file(out) as part:
        try:
            source = sqlite3.connect(f"file:{src}?mode=rw", uri=True, timeout=30)
            try:
                target = sqlite3.connect(part)
                try:
                    # One step (pages=-1): the copy is one read transaction, i.e. one consistent snapshot.
                    # Stepwise copying restarts whenever another process writes, and a busy store
                    # could keep it restarting for ever.
                    source.backup(target, pages=-1)
                    target.execute("PRAGMA journal_mode=DELETE")
                    if prepare is not None:
                        prepare(target)
                        target.commit()
                    _check_sqlite(target, part)
                finally:
                    target.close()
            finally:
                source.close()
        except sqlite3.Error as exc:
            raise BackupError(f"数据库备份失败：{exc}") from exc
    return out.stat().st_size


def _check_sqlite(conn: sqlite3.Connection, path: Path) -> None:
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path.name} 不是可用的 SQLite 数据库（{exc}）") from exc
    if not result or result[0] != "ok":
        raise BackupError(f"{path.name} 校验失败：{result[0] if result else '无结果'}")


def is_sqlite_url(url: str) -> bool:
    return "://" not in url or url.split("://", 1)[0].split("+", 1)[0] == "sqlite"


def sqlite_path_of(url: str) -> Path:
    """The file of an SQLite URL (or a bare path, as `shared.relay.sql_store.relay_engine` accepts)."""
    if "://" not in url:
        return Path(url)
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("内存数据库无法备份")
    return Path(database)


def _restore_sqlite(src: Path, target: Path, *, force: bool) -> None:
    if target.exists() and not force:
        raise BackupError(f"数据库文件已存在：{target}；确认要用备份覆盖时请加 --force（先停止服务）")
    if not target.parent.is_dir():
        raise BackupError(f"目标文件夹不存在：{target.parent}")
    try:
        conn = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        try:
            _check_sqlite(conn, src)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{src} 不是可用的 SQLite 数据库备份（{exc}）") from exc
    part = target.with_name(f".{target.name}.restore-part")
    try:
        shutil.copyfile(src, part)
        with open(part, "rb+") as fh:
            os.fsync(fh.fileno())
        # A WAL left by the old database would be replayed onto the restored one and corrupt it.
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(part, target)
        _fsync_dir(target.parent)
    finally:
        part.unlink(missing_ok=True)


# ---------------------------------------------------------------- PostgreSQL


_PG_QUERY_ENV = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT", "target_session_attrs": "PGTARGETSESSIONATTRS",
    "application_name": "PGAPPNAME", "passfile": "PGPASSFILE",
}


def pg_environment(url: str, base: Mapping[str, str] | None = None) -> tuple[dict[str, str], str]:
    """The environment for `pg_dump`/`pg_restore` from an SQLAlchemy PostgreSQL URL, and the
    database name. Every connection parameter, the password above all, travels in `PG*` variables,
    taken from the URL alone: the caller's own `PG*` variables are dropped, so the tool reaches exactly
    the database the store uses (`~/.pgpass` still applies when the URL has no password)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise BackupError(f"不是 PostgreSQL 数据库地址：{parsed.render_as_string(hide_password=True)}")
    env = {k: v for k, v in (base if base is not None else os.environ).items() if not k.startswith("PG")}
    if parsed.host:
        env["PGHOST"] = parsed.host
    if parsed.port:
        env["PGPORT"] = str(parsed.port)
    if parsed.username:
        env["PGUSER"] = parsed.username
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    for key, value in parsed.query.items():
        name = _PG_QUERY_ENV.get(key)
        if name is None:
            raise BackupError(f"数据库地址中的参数 {key} 不支持用于备份")
        env[name] = value if isinstance(value, str) else value[-1]
    database = parsed.database or ""
    # The name is the only connection value on the command line (pg_restore needs -d), so it must
    # not be readable as a connection string carrying other parameters.
    if not database or "=" in database or "://" in database:
        raise BackupError("数据库地址缺少有效的数据库名")
    env["PGDATABASE"] = database
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    return env, database


def find_pg_tool(name: str) -> Path:
    """`pg_dump` or `pg_restore`: from PATH first, then the PostgreSQL 15 binaries."""
    found = shutil.which(name)
    if found:
        return Path(found)
    fallback = PG_BIN_FALLBACK / name
    if fallback.is_file():
        return fallback
    raise BackupError(f"找不到 {name}：请安装 PostgreSQL 客户端（postgresql-client-15）")


def _run_pg(argv: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=PG_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{what}超时（{PG_TIMEOUT_S // 3600} 小时）") from exc
    except OSError as exc:
        raise BackupError(f"无法运行 {argv[0]}：{os_error_zh(exc)}") from exc
    if done.returncode != 0:
        raise BackupError(f"{what}失败：{(done.stderr or done.stdout).strip()[-800:]}")
    return done


def _pg_is_empty(url: str) -> bool:
    from sqlalchemy import text

    from shared.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            count = conn.execute(text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
                "AND n.nspname NOT LIKE 'pg\\_temp%' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')")).scalar()
    except Exception as exc:
        raise BackupError(f"无法连接目标数据库：{exc.__class__.__name__}") from exc
    finally:
        engine.dispose()
    return int(count or 0) == 0


# ---------------------------------------------------------------- any store


def backup_database(url: str, out: Path) -> int:
    """Back up the store at `url` into the new file `out`: an SQLite database file, or a `pg_dump`
    custom-format archive. Returns the file's size in bytes."""
    if is_sqlite_url(url):
        return sqlite_online_backup(sqlite_path_of(url), out)
    env, _database = pg_environment(url)
    _refuse_existing(out)
    tool = find_pg_tool("pg_dump")
    with _part_file(out) as part:
        _run_pg([str(tool), "--format=custom", "--no-password", f"--file={part}"], env, "数据库导出（pg_dump）")
    return out.stat().st_size


def restore_database(url: str, src: Path, *, force: bool = False) -> None:
    """Restore a `backup_database` file into the store at `url`. SQLite: the file is put in place only
    when the target does not exist (or with `force`). PostgreSQL: only into an empty database."""
    if not src.is_file():
        raise BackupError(f"找不到备份文件：{src}")
    if is_sqlite_url(url):
        _restore_sqlite(src, sqlite_path_of(url), force=force)
        return
    env, database = pg_environment(url)
    tool = find_pg_tool("pg_restore")
    # Is it an archive at all? `--list` reads the table of contents without connecting.
    _run_pg([str(tool), "--list", str(src)], env, "读取备份文件（pg_restore --list）")
    if not _pg_is_empty(url):
        raise BackupError(f"目标数据库 {database} 不是空的；请恢复到新建的空数据库")
    _run_pg([str(tool), "--no-password", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
             "-d", database, str(src)], env, "数据库恢复（pg_restore）")


def backup_store_encrypted(url: str, out: Path, passphrase: str, *, kind: str, info: Mapping[str, str] | None = None,
                           scrypt_n: int = DEFAULT_SCRYPT_N) -> int:
    """`backup_database` of the store at `url`, sealed under `passphrase` into the new file `out`
    (0600); returns its size. The plain dump exists only in a private temporary folder beside `out`
    while it is sealed."""
    _refuse_existing(out)
    name = "database.sqlite" if is_sqlite_url(url) else "database.pgdump"
    with tempfile.TemporaryDirectory(prefix=".qc-backup-", dir=out.parent) as tmp:
        os.chmod(tmp, 0o700)
        dump = Path(tmp) / name
        backup_database(url, dump)
        return write_encrypted_backup(out, [(name, dump)], passphrase, kind=kind, info=info, scrypt_n=scrypt_n)


def restore_store_encrypted(url: str, src: Path, passphrase: str, *, kind: str, force: bool = False) -> BackupInfo:
    """Restore a `backup_store_encrypted` file into the store at `url` (as `restore_database` does).
    A wrong passphrase or a tampered file: `BackupError`, and the store is not touched."""
    parent = Path(tempfile.gettempdir()) if is_sqlite_url(url) is False else sqlite_path_of(url).resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".qc-restore-", dir=parent) as tmp:
        os.chmod(tmp, 0o700)
        folder = Path(tmp) / "backup"
        info = read_encrypted_backup(src, passphrase, folder, kind=kind)
        if len(info.files) != 1:
            raise BackupError("备份内容不符：应只含一个数据库文件")
        restore_database(url, folder / info.files[0], force=force)
    return info


# ---------------------------------------------------------------- encrypted archive


@dataclass(frozen=True)
class BackupInfo:
    kind: str
    created_at_ms: int
    info: dict[str, str]
    files: list[str]


def _keys(passphrase: str, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes]:
    master = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))

    def sub(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)

    return sub(b"quancheng backup v1: data"), sub(b"quancheng backup v1: passphrase check")


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")


class _SealingWriter(io.RawIOBase):
    """A write-only stream that seals what is written to it, chunk by chunk, into `sink`."""

    def __init__(self, sink: BinaryIO, aead: AESGCM, prefix: bytes, aad: bytes) -> None:
        super().__init__()
        self._sink, self._aead, self._prefix, self._aad = sink, aead, prefix, aad
        self._buffer = bytearray()
        self._counter = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]  # RawIOBase takes any buffer; dumps hand it bytes
        self._buffer += data
        while len(self._buffer) > CHUNK_BYTES:  # keep one chunk back: the last one is flagged
            self._emit(bytes(self._buffer[:CHUNK_BYTES]), last=False)
            del self._buffer[:CHUNK_BYTES]
        return len(data)

    def _emit(self, chunk: bytes, *, last: bool) -> None:
        if self._counter >= 2**32 - 1:
            raise BackupError("备份过大")
        sealed = self._aead.encrypt(_nonce(self._prefix, self._counter, last), chunk, self._aad)
        self._sink.write(struct.pack(">I", len(sealed)) + sealed)
        self._counter += 1

    def finish(self) -> None:
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()


def write_encrypted_backup(out: Path, files: Sequence[tuple[str, Path]], passphrase: str, *, kind: str,
                           info: Mapping[str, str] | None = None, scrypt_n: int = DEFAULT_SCRYPT_N) -> int:
    """Seal `files` ((name in the backup, path on disk)) under `passphrase` into the new file `out`;
    returns its size. Names are plain file names: a backup restores into one flat folder."""
    if len(passphrase) < 8:
        raise BackupError("备份口令至少需要 8 个字符")
    for name, _path in files:
        _check_member_name(name)
    _refuse_existing(out)
    salt, prefix = os.urandom(16), os.urandom(7)
    data_key, check_key = _keys(passphrase, salt, scrypt_n, 8, 1)
    header = json.dumps({
        "format": BACKUP_FORMAT, "kind": kind, "created_at_ms": int(time.time() * 1000), "info": dict(info or {}),
        "kdf": {"name": "scrypt", "n": scrypt_n, "r": 8, "p": 1, "salt": base64.b64encode(salt).decode("ascii")},
        "cipher": {"name": "aes-256-gcm-chunked", "chunk_bytes": CHUNK_BYTES,
                   "nonce_prefix": base64.b64encode(prefix).decode("ascii")},
        "check": base64.b64encode(hmac.new(check_key, salt, hashlib.sha256).digest()).decode("ascii"),
        "files": [name for name, _ in files],
    }, ensure_ascii=False, sort_keys=True).encode("utf-8")
    preamble = MAGIC + struct.pack(">I", len(header)) + header
    with _part_file(out) as part:
        with open(part, "wb") as sink:
            sink.write(preamble)
            writer = _SealingWriter(sink, AESGCM(data_key), prefix, preamble)
            with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for name, path in files:
                    try:
                        with open(path, "rb") as fh:
                            member = tarfile.TarInfo(name)
                            member.size = os.fstat(fh.fileno()).st_size
                            member.mode = 0o600
                            member.mtime = int(os.fstat(fh.fileno()).st_mtime)
                            tar.addfile(member, fh)
                    except FileNotFoundError as exc:
                        raise BackupError(f"找不到要备份的文件：{path}") from exc
            writer.finish()
            sink.flush()
    return out.stat().st_size


def _check_member_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith(".") or "\x00" in name:
        raise BackupError(f"备份中的文件名无效：{name!r}")


def _read_header(fh: BinaryIO) -> tuple[bytes, dict[str, Any]]:
    head = fh.read(len(MAGIC) + 4)
    if len(head) < len(MAGIC) + 4 or not head.startswith(MAGIC):
        raise BackupError("不是可识别的备份文件（文件头不符）")
    (length,) = struct.unpack(">I", head[len(MAGIC):])
    if length > MAX_HEADER_BYTES:
        raise BackupError("备份文件已损坏：文件头过大")
    header = fh.read(length)
    if len(header) != length:
        raise BackupError("备份文件不完整（文件头被截断）")
    try:
        doc = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError("备份文件已损坏：文件头无法读取") from exc
    if not isinstance(doc, dict) or doc.get("format") != BACKUP_FORMAT:
        fmt = doc.get("format") if isinstance(doc, dict) else None
        raise BackupError(f"不支持的备份格式 {fmt!r}（本程序读取 {BACKUP_FORMAT}）")
    return head + header, doc


def read_encrypted_backup(src: Path, passphrase: str, dest: Path, *, kind: str) -> BackupInfo:
    """Verify the whole backup `src`, then write its files into the folder `dest` (created; it must
    not exist or be empty). A wrong passphrase, a tampered or truncated file: `BackupError`, and
    nothing is written into `dest`."""
    if not src.is_file():
        raise BackupError(f"找不到备份文件：{src}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"目标文件夹 {dest} 不是空的，不会覆盖其中的数据；请指定一个空文件夹")
    with open(src, "rb") as fh:
        preamble, doc = _read_header(fh)
        if doc.get("kind") != kind:
            raise BackupError(f"这不是本程序的备份（备份类型为 {doc.get('kind')!r}）")
        try:
            kdf, cipher = doc["kdf"], doc["cipher"]
            assert isinstance(kdf, dict) and isinstance(cipher, dict)
            salt = base64.b64decode(str(kdf["salt"]), validate=True)
            prefix = base64.b64decode(str(cipher["nonce_prefix"]), validate=True)
            check = base64.b64decode(str(doc["check"]), validate=True)
            n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            raise BackupError("备份文件已损坏：文件头缺少或含有无效的字段") from exc
        if kdf.get("name") != "scrypt" or cipher.get("name") != "aes-256-gcm-chunked" or len(prefix) != 7:
            raise BackupError("备份文件使用了不支持的加密方式")
        if n < 2**14 or n > 2**20 or n & (n - 1) or not 1 <= r <= 16 or not 1 <= p <= 4:
            raise BackupError("备份文件已损坏：口令派生参数无效")
        data_key, check_key = _keys(passphrase, salt, n, r, p)
        if not hmac.compare_digest(hmac.new(check_key, salt, hashlib.sha256).digest(), check):
            raise BackupError("口令错误（或备份文件头已被改动），未恢复任何文件")
        # Decrypted beside the target (same file system, so the files move into place by rename).
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".qc-restore-", dir=dest.parent))
        try:
            plain = work / "backup.tar"
            _open_chunks(fh, AESGCM(data_key), prefix, preamble, plain)
            names = _extract(plain, work / "files", [str(x) for x in doc.get("files", [])])
            dest.mkdir(parents=True, exist_ok=True)
            for name in names:
                os.replace(work / "files" / name, dest / name)
            _fsync_dir(dest)
        except OSError as exc:
            # e.g. the target on another file system: nothing half-restored may stay behind.
            for name in os.listdir(dest) if dest.exists() else []:
                (dest / name).unlink(missing_ok=True)
            raise BackupError(f"恢复失败：{os_error_zh(exc)}") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
    info = doc.get("info")
    return BackupInfo(kind, int(doc.get("created_at_ms", 0) or 0),
                      {str(k): str(v) for k, v in (info.items() if isinstance(info, dict) else [])}, names)


def _open_chunks(fh: BinaryIO, aead: AESGCM, prefix: bytes, aad: bytes, out: Path) -> None:
    counter = 0
    with open(out, "wb") as sink:
        while True:
            head = fh.read(4)
            if len(head) < 4:
                raise BackupError("备份文件不完整（可能复制时被截断），未恢复任何文件")
            (length,) = struct.unpack(">I", head)
            if length < 16 or length > CHUNK_BYTES + 16:
                raise BackupError("备份文件已损坏或被改动，未恢复任何文件")
            sealed = fh.read(length)
            if len(sealed) != length:
                raise BackupError("备份文件不完整（可能复制时被截断），未恢复任何文件")
            try:
                chunk = aead.decrypt(_nonce(prefix, counter, False), sealed, aad)
                last = False
            except InvalidTag:
                try:
                    chunk = aead.decrypt(_nonce(prefix, counter, True), sealed, aad)
                    last = True
                except InvalidTag as exc:
                    raise BackupError("备份文件已被改动或已损坏，未恢复任何文件") from exc
            sink.write(chunk)
            counter += 1
            if last:
                break
        if fh.read(1):
            raise BackupError("备份文件末尾有多余的数据（文件已被改动），未恢复任何文件")


def _extract(archive: Path, into: Path, expected: list[str]) -> list[str]:
    into.mkdir()
    names: list[str] = []
    try:
        with tarfile.open(archive, mode="r:") as tar:
            for member in tar:
                _check_member_name(member.name)
                if not member.isfile() or member.name in names:
                    raise BackupError(f"备份内容无效：{member.name}")
                source = tar.extractfile(member)
                assert source is not None
                fd = os.open(into / member.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as target:
                    shutil.copyfileobj(source, target)
                    target.flush()
                    os.fsync(target.fileno())
                names.append(member.name)
    except tarfile.TarError as exc:
        raise BackupError("备份内容无法解开（文件已损坏）") from exc
    if sorted(names) != sorted(expected):
        raise BackupError("备份内容与文件头记载的文件不符")
    return names
