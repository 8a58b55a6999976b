"""The deployment files under `ops/`: systemd units that systemd accepts and that run commands and
options the command lines really have, example settings that define every variable a unit uses, a
TLS tool whose certificates the servers load, and an operations guide whose commands all parse."""
from __future__ import annotations

import argparse
import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import hub.cli
import ops.tls
import town_center.cli
import village_agent.cli
from shared.relay.tls import ClientTls, ServerTls

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "ops"
BIN = Path(sys.executable).parent
CREDENTIALS = "/run/credentials/unit.service"      # what %d stands for in a system unit
RUNTIME = "/run/user/1000"                         # %t in a user unit
HOME = "/home/agent"                               # %h

Parser = Callable[[], argparse.ArgumentParser]
# unit file -> (command, its parser, example environment file)
UNITS: dict[str, tuple[str, Parser, str]] = {
    "county-hub.service": ("county-hub", hub.cli.build_parser, "county-hub.env"),
    "town-center.service": ("town-center", town_center.cli.build_parser, "town-center.env"),
    "village-agent.service": ("village-agent", village_agent.cli.build_parser, "village-agent.env"),
}
SYSTEM_UNITS = ["county-hub.service", "town-center.service"]


def unit(name: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file as systemd reads it: sections of (key, value) in order, repeated keys kept."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in (OPS / "systemd" / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None and "=" in line, f"{name}: not a key=value line: {raw!r}"
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(name: str, section: str, key: str) -> list[str]:
    return [v for k, v in unit(name).get(section, []) if k == key]


def one(name: str, section: str, key: str) -> str:
    found = values(name, section, key)
    assert len(found) == 1, f"{name}: [{section}] {key}= appears {len(found)} times"
    return found[0]


def env_file(name: str) -> dict[str, str]:
    """An environment file as systemd reads it (KEY=VALUE, # comments, quotes stripped)."""
    out: dict[str, str] = {}
    for raw in (OPS / "examples" / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"{name}: bad line {raw!r}"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    return out


def exec_argv(name: str, environment: dict[str, str]) -> list[str]:
    """ExecStart= expanded as systemd does: specifiers, `${VAR}` as one word, `$VAR` split at spaces."""
    line = one(name, "Service", "ExecStart")
    line = line.replace("%d", CREDENTIALS).replace("%t", RUNTIME).replace("%h", HOME)
    argv: list[str] = []
    for word in line.split():
        if m := re.fullmatch(r"\$\{([A-Z_0-9]+)\}", word):
            argv.append(environment.get(m.group(1), ""))
        elif m := re.fullmatch(r"\$([A-Z_0-9]+)", word):
            argv.extend(environment.get(m.group(1), "").split())
        else:
            assert "$" not in word, f"{name}: a variable inside a word: {word}"
            argv.append(word)
    return argv


def parse(parser: Parser, argv: list[str], what: str) -> argparse.Namespace:
    try:
        return parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{what}: the command line does not parse: {' '.join(argv)}")


@pytest.mark.parametrize("name", list(UNITS))
def test_each_unit_file_parses_and_configparser_reads_it_too(name: str) -> None:
    reader = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    reader.optionxform = str
    reader.read(OPS / "systemd" / name, encoding="utf-8")
    assert {"Unit", "Service"} <= set(reader.sections())
    assert reader["Service"]["Type"] == "simple" and "serve" in reader["Service"]["ExecStart"]
    assert unit(name)["Unit"] and unit(name)["Service"]


@pytest.mark.parametrize("name", SYSTEM_UNITS)
def test_the_server_units_run_as_a_dedicated_user_with_a_root_only_passphrase_and_hardening(name: str) -> None:
    command, _parser, env_name = UNITS[name]
    s = dict(unit(name)["Service"])
    assert s["User"] == s["Group"] == "quancheng"
    assert s["Restart"] == "on-failure"
    assert one(name, "Service", "EnvironmentFile") == f"/etc/quancheng/{env_name}"
    [credential] = values(name, "Service", "LoadCredential")
    assert credential == f"passphrase:/etc/quancheng/{command}.passphrase"
    for key, wanted in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "ProtectHome": "yes",
                        "PrivateDevices": "yes", "RestrictSUIDSGID": "yes", "UMask": "0077", "CapabilityBoundingSet": ""}.items():
        assert s.get(key) == wanted, f"{name}: {key}={s.get(key)!r}, wanted {wanted!r}"
    assert values(name, "Service", "ReadWritePaths") == [s["WorkingDirectory"]]
    assert s["ExecStart"].startswith(f"/opt/quancheng/.venv/bin/{command} serve ")
    assert one(name, "Install", "WantedBy") == "multi-user.target"
    # The data folder systemd makes for the service is the one the command uses.
    home = env_file(env_name)["QUANCHENG_COUNTY_HOME" if command == "county-hub" else "QUANCHENG_TOWN_HOME"]
    assert s["WorkingDirectory"] == home == "/var/lib/" + s["StateDirectory"]


@pytest.mark.parametrize("name", SYSTEM_UNITS)
def test_the_server_units_exec_line_with_the_example_settings_is_a_valid_serve_command_with_tls(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    command, parser, env_name = UNITS[name]
    environment = env_file(env_name)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)          # --home and --db take their defaults from these
    argv = exec_argv(name, environment)
    assert Path(argv[0]).name == command
    args = parse(parser, argv[1:], name)
    assert args.command == "serve"
    assert args.passphrase_file == f"{CREDENTIALS}/passphrase"
    assert args.tls_cert.startswith("/etc/quancheng/tls/") and args.tls_key.startswith("/etc/quancheng/tls/")
    assert args.listen.startswith("0.0.0.0:") and args.console_listen.startswith("127.0.0.1:")
    assert args.home.startswith("/var/lib/quancheng/")
    url = make_url(args.db)
    assert url.drivername == "postgresql+psycopg" and url.query.get("host") == "/run/postgresql"
    if command == "county-hub":
        assert args.tls_client_ca == "/etc/quancheng/tls/ca.crt"      # townships need a certificate from the county CA


@pytest.mark.parametrize("name", list(UNITS))
def test_every_variable_the_exec_line_uses_is_set_in_the_example_settings_or_the_unit(name: str) -> None:
    _command, _parser, env_name = UNITS[name]
    defined = set(env_file(env_name)) | {v.partition("=")[0] for v in values(name, "Service", "Environment")}
    used = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", one(name, "Service", "ExecStart")))
    assert used and used <= defined, f"{name}: not defined anywhere: {sorted(used - defined)}"


def test_the_village_agent_user_unit_keeps_the_passphrase_off_the_disk_and_never_starts_by_itself() -> None:
    name = "village-agent.service"
    sections = unit(name)
    assert "Install" not in sections                     # started by the start script, after the passphrase
    s = dict(sections["Service"])
    assert "User" not in s and s["NoNewPrivileges"] == "yes" and s["UMask"] == "0077"
    assert one(name, "Unit", "AssertPathExists") == "%t/quancheng/passphrase"
    assert one(name, "Service", "EnvironmentFile").startswith("-")          # optional
    args = parse(village_agent.cli.build_parser, exec_argv(name, env_file("village-agent.env"))[1:], name)
    assert args.command == "serve" and args.passphrase_file == f"{RUNTIME}/quancheng/passphrase"
    start = (OPS / "village-agent-start.sh").read_text(encoding="utf-8")
    assert "$runtime/quancheng/passphrase" in start and "systemctl --user start village-agent" in start
    assert subprocess.run(["bash", "-n", str(OPS / "village-agent-start.sh")]).returncode == 0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "bin" / "village-agent").symlink_to(BIN / "village-agent")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    for name in UNITS:
        # verify checks that the programs exist: point the unit at this checkout's virtualenv.
        text = (OPS / "systemd" / name).read_text(encoding="utf-8").replace("/opt/quancheng/.venv/bin", str(BIN))
        (units / name).write_text(text, encoding="utf-8")
    system = subprocess.run(["systemd-analyze", "verify", *(str(units / n) for n in SYSTEM_UNITS)],
                            capture_output=True, text=True, timeout=60)
    user = subprocess.run(["systemd-analyze", "--user", "verify", str(units / "village-agent.service")],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, HOME=str(home), XDG_RUNTIME_DIR=str(runtime)))
    for done in (system, user):
        complaints = [line for line in (done.stdout + done.stderr).splitlines() if ".service" in line]
        assert done.returncode == 0 and not complaints, done.stdout + done.stderr


def test_the_example_settings_are_for_postgresql_and_tls_files_under_etc(tmp_path: Path) -> None:
    for name, db_key in (("county-hub.env", "QUANCHENG_COUNTY_DB"), ("town-center.env", "QUANCHENG_TOWN_DB")):
        environment = env_file(name)
        assert make_url(environment[db_key]).drivername == "postgresql+psycopg"
        tls = [v for k, v in environment.items() if "_TLS_" in k]
        assert len(tls) == 2 and all(v.startswith("/etc/quancheng/tls/") for v in tls)
    assert set(env_file("village-agent.env")) == {"VILLAGE_AGENT_ARGS"}
    # A shell can source them too (the guide's management shell does): quoted where they hold spaces.
    for name in ("county-hub.env", "town-center.env", "village-agent.env"):
        done = subprocess.run(["bash", "-c", f"set -ae; . {shlex.quote(str(OPS / 'examples' / name))}; env"],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and not done.stderr, done.stderr
        for key, value in env_file(name).items():
            assert f"{key}={value}" in done.stdout.splitlines()


def test_the_tls_tool_makes_a_ca_and_certificates_the_servers_and_clients_load(tmp_path: Path) -> None:
    def tool(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ops.tls", *argv], cwd=REPO, capture_output=True, text=True,
                              timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)))

    ca_dir = tmp_path / "ca"
    assert tool("ca", "--out-dir", str(ca_dir), "--name", "测试县政务服务中心").returncode == 0
    made = tool("cert", "--ca-dir", str(ca_dir), "--name", "county-hub", "--host", "127.0.0.1", "--host", "county.example")
    assert made.returncode == 0, made.stderr
    if os.name != "nt":
        assert (ca_dir / "ca.key").stat().st_mode & 0o777 == 0o600
        assert (ca_dir / "county-hub.key").stat().st_mode & 0o777 == 0o600
    server = ServerTls.from_files(ca_dir / "county-hub.crt", ca_dir / "county-hub.key", ca_dir / "ca.crt")
    assert server is not None and server.mutual
    ClientTls.from_files(ca_dir / "ca.crt", cert_file=ca_dir / "county-hub.crt", key_file=ca_dir / "county-hub.key")
    again = tool("ca", "--out-dir", str(ca_dir))
    assert again.returncode == 2 and "不会覆盖" in again.stderr
    assert tool("cert", "--ca-dir", str(tmp_path / "nowhere"), "--name", "x", "--host", "h").stderr.startswith("错误：")


# ---------------------------------------------------------------- the operations guide

GUIDE = OPS / "运维指南.md"
# The installed console scripts (pyproject.toml [project.scripts]): the guide names no other.
_COMMANDS: dict[str, Parser] = {
    "county-hub": hub.cli.build_parser, "town-center": town_center.cli.build_parser,
    "village-agent": village_agent.cli.build_parser,
}
_SHORT = {"county-hub": "county", "town-center": "town"}


def _guide_commands() -> list[tuple[str, list[str]]]:
    """Every invocation of one of the system's commands inside the guide's code blocks."""
    found: list[tuple[str, list[str]]] = []
    in_block = False
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if not in_block or "() {" in line:
            continue
        line = re.sub(r"\$\([^)]*\)", "X", line)          # $(date +%Y%m%d) in file names
        for segment in re.split(r"\|\||&&|\|", line):
            try:
                words = shlex.split(segment, comments=True)
            except ValueError:
                continue
            if words[:3] == [".venv/bin/python", "-m", "ops.tls"]:
                found.append(("ops.tls", words[3:]))
            elif words and words[0] in _COMMANDS:
                found.append((words[0], words[1:]))
    return found


def test_the_guide_is_chinese_and_covers_what_county_it_staff_need() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    for heading in ("安装", "PostgreSQL", "密钥与口令", "TLS", "指纹", "systemd", "备份与恢复", "升级", "监控", "常见问题"):
        assert heading in text, heading
    assert "Ed25519" in text and "签名" in text and "拒绝服务" in text     # what TLS does and does not protect
    for path in ("ops/systemd/county-hub.service", "ops/systemd/village-agent.service", "ops/examples/county-hub.env",
                 "ops/village-agent-start.sh"):
        assert (REPO / path).exists() and path.split("/")[-1] in text, path


def test_every_command_in_the_guide_is_a_real_command_with_real_options() -> None:
    commands = _guide_commands()
    assert len(commands) >= 20
    seen = set()
    for name, argv in commands:
        parser = ops.tls.build_parser if name == "ops.tls" else _COMMANDS[name]
        args = parse(parser, argv, f"运维指南: {name} {' '.join(argv)}")
        seen.add((_SHORT.get(name, name), args.command))
    for wanted in (("county", "init"), ("county", "townships"), ("town", "init"), ("town", "county"), ("town", "agents"),
                   ("town", "backup"), ("town", "restore"), ("village-agent", "init"), ("village-agent", "set-township-ca"),
                   ("village-agent", "backup"), ("village-agent", "restore"), ("ops.tls", "ca"), ("ops.tls", "cert")):
        assert wanted in seen, wanted
