"""The operations guide's production path, exactly as written (ops/运维指南.md, 第 1、2、9 节): `bash
ops/install.sh` on a copy of the release into a fresh virtual environment, then `town-center` with a
`postgresql+psycopg://…?host=<socket dir>` URL on a throwaway PostgreSQL cluster (tests/pg.py) — it must
serve: gRPC health SERVING, the console answering, tables made in PostgreSQL, `/metrics` clean under
`promtool check metrics`. The shipped alert rules pass `promtool check rules`, and every command the
guide names is one the install provides."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests import process_fixtures
from tests.pg import PostgresCluster
from tests.process_fixtures import Served, free_port

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "ops" / "运维指南.md"
RULES = REPO / "ops" / "prometheus" / "quancheng-alerts.yml"
PASSPHRASE = "乡镇服务器口令-2026"
# What a release holds (the guide: "git 克隆或解压发布包"); tests, caches and the developer's venv are not in it.
_NOT_RELEASED = shutil.ignore_patterns(".venv", ".git", "build", "tests", "test-artifacts", "__pycache__", "*.egg-info",
                                       ".pytest_cache", "bench")


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `bash ops/install.sh --test` installs Debian's prometheus package"
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A release copy after `bash ops/install.sh`, run as the guide says, with a bare environment."""
    release = tmp_path_factory.mktemp("opt") / "quancheng"
    shutil.copytree(REPO, release, ignore=_NOT_RELEASED)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ.get("HOME", "/root"),
           "LANG": "C.UTF-8"}
    done = subprocess.run(["bash", "ops/install.sh"], cwd=release, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"install.sh failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    yield release


def test_the_production_install_provides_the_postgresql_driver_and_the_three_commands(installed: Path) -> None:
    venv = installed / ".venv"
    assert venv.resolve() != Path(sys.prefix).resolve()
    for command in ("town-center", "county-hub", "village-agent"):
        assert (venv / "bin" / command).is_file(), command
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import psycopg, sqlalchemy; "
                            "sqlalchemy.create_engine('postgresql+psycopg://quancheng@/q?host=/run/postgresql')"],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr


@pytest.mark.postgres
def test_a_township_installed_as_documented_serves_on_postgresql_through_the_socket_url(
        installed: Path, postgres_cluster: PostgresCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = postgres_cluster.create_database().rsplit("/", 1)[1]
    # The guide's form, postgresql+psycopg://用户@/库名?host=套接字目录 (the throwaway cluster's socket
    # carries its own port number, which libpq reads from `port`).
    url = (f"postgresql+psycopg://{postgres_cluster.user}@/{database}"
           f"?host={postgres_cluster.base_dir}&port={postgres_cluster.port}")
    home = tmp_path / "town"
    passphrase_file = tmp_path / "town-center.passphrase"
    passphrase_file.write_text(PASSPHRASE, encoding="utf-8")
    passphrase_file.chmod(0o600)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "QUANCHENG_TOWN_HOME": str(home), "QUANCHENG_TOWN_DB": url}
    town_center = str(installed / ".venv" / "bin" / "town-center")
    init = subprocess.run([town_center, "init", "--passphrase-file", str(passphrase_file)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stdout + init.stderr
    grpc_port, web_port, metrics_port = free_port(), free_port(), free_port()
    served = Served([town_center, "serve", "--passphrase-file", passphrase_file, "--listen", f"127.0.0.1:{grpc_port}",
                     "--console-listen", f"127.0.0.1:{web_port}", "--metrics-listen", f"127.0.0.1:{metrics_port}"],
                    tmp_path / "serve.log", [grpc_port, web_port, metrics_port])
    monkeypatch.setattr(process_fixtures, "ENV", env)     # Served starts the process with this environment
    served.start(timeout=60)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="quancheng.v1.Relay"), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert httpx.get(f"http://127.0.0.1:{web_port}/login", timeout=10).status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert "quancheng_hop_clocks" in metrics
        checked = subprocess.run([_promtool(), "check", "metrics"], input=metrics, capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        assert served.stop() == 0, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
    import psycopg

    with psycopg.connect(postgres_cluster.dsn(database)) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"town_matter", "agent_key", "hop_deadline"} <= tables
    assert not list(home.glob("*.db")), "the township fell back to SQLite"


def test_the_shipped_alert_rules_pass_promtool() -> None:
    checked = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_the_guide_names_only_the_installed_commands() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    assert not re.search(r"\bqc-\w", text), "the guide still uses the old qc-… command names"
    import tomllib

    scripts = set(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"])
    assert scripts == {"town-center", "county-hub", "village-agent"}
    # Inline commands in the text, e.g. `town-center county status`, exist as subcommands too.
    import hub.cli
    import town_center.cli
    import village_agent.cli

    parsers = {"town-center": town_center.cli.build_parser, "county-hub": hub.cli.build_parser,
               "village-agent": village_agent.cli.build_parser}
    inline = re.findall(r"`((?:town-center|county-hub|village-agent) [a-z][a-z-]*(?: [a-z][a-z-]*)?)", text)
    assert len(inline) >= 5
    for command in inline:
        name, *words = command.split()
        parser = parsers[name]()
        try:
            parser.parse_known_args([*words, "--help"])
        except SystemExit as exc:
            assert exc.code == 0, f"运维指南: `{command}` is not a command"
    assert "ops/prometheus/quancheng-alerts.yml" in text
