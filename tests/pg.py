"""A throwaway PostgreSQL 15 cluster for tests and benches.

`start_postgres()` runs ``initdb`` and ``postgres`` from the PostgreSQL binaries (``$PG_BIN``, else
``/usr/lib/postgresql/15/bin``, else whatever ``pg_config --bindir`` says) in a fresh temp directory,
listening on a free port on 127.0.0.1 only, and returns a `PostgresCluster` with an SQLAlchemy URL
(``postgresql+psycopg://``). PostgreSQL refuses to run as root, so when we are root the server runs
as the ``postgres`` user (via ``runuser``). Durability is switched off (fsync, synchronous_commit,
full_page_writes): the data is thrown away anyway.

When the binaries (or, as root, the ``postgres`` user) are missing, `PostgresUnavailable` says why, and
the `postgres_url` fixture skips with that reason. Anything else that goes wrong is an error, not a skip.

    with start_postgres() as cluster:
        url = cluster.create_database("t1")
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PostgresUnavailable", "PostgresCluster", "start_postgres", "find_pg_bin"]

_START_TIMEOUT_S = 30.0


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be started here (binaries or the postgres user missing)."""


def find_pg_bin() -> Path:
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    candidates.append(Path("/usr/lib/postgresql/15/bin"))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    for c in candidates:
        if (c / "initdb").is_file() and (c / "postgres").is_file() and (c / "pg_ctl").is_file():
            return c
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found (looked in $PG_BIN, /usr/lib/postgresql/15/bin, pg_config --bindir)"
    )


@dataclass
class PostgresCluster:
    bin_dir: Path
    base_dir: Path
    port: int
    run_as: str | None  # "postgres" when we are root
    user: str = "postgres"
    _stopped: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database}"

    def create_database(self, name: str | None = None) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            _run(self, [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "30"], timeout=40)
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _run(cluster_or_user: PostgresCluster | str | None, argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    run_as = cluster_or_user.run_as if isinstance(cluster_or_user, PostgresCluster) else cluster_or_user
    if run_as:
        argv = ["runuser", "-u", run_as, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True, cwd="/")


def start_postgres(*, settings: dict[str, str] | None = None) -> PostgresCluster:
    """Start a throwaway cluster. Raises `PostgresUnavailable` when it cannot run here."""
    bin_dir = find_pg_bin()
    run_as: str | None = None
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run the server") from exc
        if not shutil.which("runuser"):
            raise PostgresUnavailable("running as root and 'runuser' is not available to drop privileges")
        run_as = "postgres"
    base = Path(tempfile.mkdtemp(prefix="qcdb-pg-"))
    if run_as:
        os.chown(base, pw.pw_uid, pw.pw_gid)
    cluster = PostgresCluster(bin_dir=bin_dir, base_dir=base, port=0, run_as=run_as)
    try:
        _run(
            run_as,
            [str(bin_dir / "initdb"), "-D", str(cluster.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--locale=C", "--no-sync"],
            timeout=120,
        )
        options = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(base),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "50",
            "timezone": "UTC",
        }
        options.update(settings or {})
        last_error = ""
        # Imported here: conftest imports this module before it registers tests.common_fixtures as a plugin.
        from tests.common_fixtures import free_port

        for _attempt in range(5):  # the free port can be taken between probing and binding
            cluster.port = free_port()
            opts = " ".join(f"-c {k}={v}" for k, v in options.items()) + f" -p {cluster.port}"
            try:
                _run(
                    run_as,
                    [str(bin_dir / "pg_ctl"), "start", "-D", str(cluster.data_dir), "-w", "-t", str(int(_START_TIMEOUT_S)),
                     "-l", str(base / "server.log"), "-o", opts],
                    timeout=_START_TIMEOUT_S + 10,
                )
            except subprocess.CalledProcessError as exc:
                last_error = (exc.stderr or "")[-500:]
                continue
            _wait_ready(cluster)
            return cluster
        raise RuntimeError(f"PostgreSQL did not start: {last_error}")
    except BaseException:
        cluster.stop()
        raise


def _wait_ready(cluster: PostgresCluster) -> None:
    import psycopg

    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(cluster.dsn(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
