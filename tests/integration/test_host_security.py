"""The three command lines as an administrator (or a careless one) runs them, as real processes under a
loose umask (022):

* a township or county server off loopback without TLS settings refuses to start, in Chinese, unless
  `--insecure-plaintext` is given; console pages off loopback without HTTPS in front likewise;
* township and county backups are sealed under the tier's passphrase, created 0600, and a wrong
  passphrase restores nothing;
* data folders are 0700 and every file in them 0600, whatever the umask (database, WAL, keys, logs);
* staff passwords: short, leaked and guessable ones are refused in Chinese; a hash made with the old
  scrypt cost is raised to n=2^17 at the next sign-in.
"""
from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from shared.backup import MAGIC
from shared.clock import FakeClock
from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.console.passwords import DEFAULT_SCRYPT
from shared.console.store import staff
from shared.domain.handling import Role
from tests.town_fixtures import MONDAY_9AM
from tests.village_fixtures import PASSPHRASE

BIN = Path(sys.executable).parent
ENV = dict(os.environ, QUANCHENG_PASSPHRASE=PASSPHRASE)


def run(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=timeout,
                          env=env or ENV, preexec_fn=lambda: os.umask(0o022), stdin=subprocess.DEVNULL)


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root.parent)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def assert_owner_only(root: Path) -> None:
    for name, mode in modes(root).items():
        path = root.parent / name
        expected = 0o700 if path.is_dir() else 0o600
        assert mode == expected, f"{name}: {mode:o}"


# ---------------------------------------------------------------- plain text off loopback


@pytest.mark.parametrize(("tier", "argv"), [
    ("town-center", ["--listen", "0.0.0.0:0"]),
    ("county-hub", ["--listen", "0.0.0.0:0"]),
    ("town-center", ["--listen", "127.0.0.1:0", "--console-listen", "0.0.0.0:0"]),
    ("county-hub", ["--listen", "[::]:0"]),
])
def test_a_server_off_loopback_without_tls_refuses_to_start_in_chinese(tmp_path: Path, tier: str, argv: Sequence[str]) -> None:
    done = run(tier, "serve", "--home", str(tmp_path / "none"), *argv)
    assert done.returncode == 2
    assert "拒绝启动" in done.stderr and "--insecure-plaintext" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "none").exists()   # refused before anything was opened


def test_insecure_plaintext_lets_a_township_serve_off_loopback_when_the_administrator_says_so(tmp_path: Path) -> None:
    home = tmp_path / "town"
    assert run("town-center", "init", "--home", str(home)).returncode == 0
    port_file = tmp_path / "port"
    proc = subprocess.Popen([str(BIN / "town-center"), "serve", "--home", str(home), "--listen", "0.0.0.0:0",
                             "--console-listen", "off", "--insecure-plaintext", "--port-file", str(port_file)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=lambda: os.umask(0o022))
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", int(port_file.read_text())), timeout=5):
            pass
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert "乡镇中心已启动" in out and "未加密" in out
    assert_owner_only(home)   # the database, its WAL and the keys, made under umask 022


def test_the_settings_check_lets_loopback_and_tls_through() -> None:
    from shared.console.errors import WebSettingError
    from shared.serving import check_plaintext_allowed

    check_plaintext_allowed("127.0.0.1:7001", None, console_address="127.0.0.1:8700")
    check_plaintext_allowed("[::1]:7001", None, console_address="localhost:8700")
    check_plaintext_allowed("127.0.0.1:7001", None, console_address="0.0.0.0:8700", secure_cookies=True)
    with pytest.raises(WebSettingError, match="同步服务监听 10.0.0.5:7001"):
        check_plaintext_allowed("10.0.0.5:7001", None)


# ---------------------------------------------------------------- sealed backups


@pytest.mark.parametrize(("tier", "db_name"), [("town-center", "town.db"), ("county-hub", "county.db")])
def test_township_and_county_backups_are_sealed_owner_only_and_need_the_passphrase(
        tmp_path: Path, tier: str, db_name: str) -> None:
    home = tmp_path / "home"
    assert run(tier, "init", "--home", str(home)).returncode == 0
    out = tmp_path / "backup.bak"
    wrong_env = dict(ENV, QUANCHENG_PASSPHRASE="不是这个口令不是")
    refused = run(tier, "backup", "--home", str(home), "--out", str(out), env=wrong_env)
    assert refused.returncode == 2 and "口令错误" in refused.stderr and not out.exists()

    done = run(tier, "backup", "--home", str(home), "--out", str(out))
    assert done.returncode == 0 and "已用" in done.stdout and "口令加密" in done.stdout, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    sealed = out.read_bytes()
    assert sealed.startswith(MAGIC) and b"SQLite format 3" not in sealed and b"CREATE TABLE" not in sealed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no plain dump left beside it

    target = tmp_path / "restored"
    bad = run(tier, "restore", "--home", str(target), "--from", str(out), env=wrong_env)
    assert bad.returncode == 2 and "口令错误" in bad.stderr and not (target / db_name).exists()
    ok = run(tier, "restore", "--home", str(target), "--from", str(out))
    assert ok.returncode == 0, ok.stderr
    assert (target / db_name).read_bytes()[:15] == b"SQLite format 3"
    assert_owner_only(target)


def test_a_laptops_data_folder_and_ledger_export_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    from shared.keys import enrollment_uri
    from shared.signing import Signer

    root = tmp_path / "agent"
    done = run("village-agent", "init", "--data", str(root), "--agent-name", "王芳", "--village-code", "V001",
               "--village-name", "东山村", "--township-code", "T01", "--township-name", "青石镇",
               "--township-address", "127.0.0.1:1", "--township-key", enrollment_uri(Signer.generate().public_key))
    assert done.returncode == 0, done.stderr
    assert run("village-agent", "list", "--data", str(root)).returncode == 0
    ledger = tmp_path / "台账导出.qclog"
    exported = run("village-agent", "export", "--data", str(root), "--out", str(ledger))
    assert exported.returncode == 0, exported.stderr
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600   # the ledger export was 0644 under this umask
    assert_owner_only(root)


# ---------------------------------------------------------------- staff passwords


@pytest.mark.parametrize(("password", "why"), [
    ("短密码2026", "至少需要 12 个字符"),
    ("password1234", "常用密码"),
    ("qwertyuiop123", "容易被猜中"),
    ("aaaaaaaaaaaaaa", "容易被猜中"),
    ("wangfang20262026", "登录名"),
])
def test_staff_add_refuses_short_leaked_and_guessable_passwords_in_chinese(tmp_path: Path, password: str, why: str) -> None:
    home = tmp_path / "town"
    assert run("town-center", "init", "--home", str(home)).returncode == 0
    done = run("town-center", "staff", "add", "wangfang", "--name", "王芳", "--role", "operator", "--home", str(home),
               env=dict(ENV, QUANCHENG_STAFF_PASSWORD=password))
    assert done.returncode == 2 and why in done.stderr and "Traceback" not in done.stderr
    good = run("town-center", "staff", "add", "wangfang", "--name", "王芳", "--role", "operator", "--home", str(home),
               env=dict(ENV, QUANCHENG_STAFF_PASSWORD="青石镇窗口2026春季值班"))
    assert good.returncode == 0, good.stderr


def test_a_password_hashed_at_the_old_cost_is_raised_to_n_2_17_at_its_next_sign_in(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'console.db'}")
    create_console_tables(engine)
    clock = FakeClock(MONDAY_9AM)
    old = ConsoleAuth(engine, clock, kdf=ScryptParams(n=2**15, r=8, p=1))
    old.create_staff("wangfang", "王芳", Role.OPERATOR, "青石镇窗口2026春季值班")
    assert DEFAULT_SCRYPT.n == 2**17
    ConsoleAuth(engine, clock).authenticate("wangfang", "青石镇窗口2026春季值班", address="10.0.0.1")
    with engine.connect() as conn:
        stored = conn.execute(select(staff.c.password_hash)).scalar_one()
    assert stored.startswith("scrypt$n=131072,r=8,p=1$")
    ConsoleAuth(engine, clock).authenticate("wangfang", "青石镇窗口2026春季值班", address="10.0.0.1")   # still accepted
    engine.dispose()
