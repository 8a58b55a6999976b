"""The village agent's single-file installer: built with shiv from this checkout, it runs on its own
(no virtualenv on the path) and does real work: initialise a laptop, record a request, report status."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from ops.build_installer import build
from shared.keys import enrollment_uri
from shared.signing import Signer
from tests.village_fixtures import PASSPHRASE, request_params


def test_the_single_file_installer_initialises_a_laptop_records_a_request_and_reports_status(tmp_path: Path) -> None:
    pyz = build(tmp_path / "village-agent.pyz")
    assert pyz.stat().st_size < 80_000_000
    # Only the interpreter and the file: no project or venv packages importable from outside the zipapp.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHIV_ROOT": str(tmp_path / "shiv-root"),
           "QUANCHENG_PASSPHRASE": PASSPHRASE, "LANG": os.environ.get("LANG", "C.UTF-8")}
    python = [sys.executable, "-I", str(pyz)]
    data = tmp_path / "laptop"

    def agent(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*python, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)

    init = agent("init", "--data", str(data), "--agent-name", "王芳", "--village-code", "V001", "--village-name", "东山村",
                 "--township-code", "T01", "--township-name", "青石镇", "--township-address", "127.0.0.1:1",
                 "--township-key", enrollment_uri(Signer.generate().public_key))
    assert init.returncode == 0, init.stderr
    line = json.dumps(request_params(random.Random(1)), ensure_ascii=False) + "\n"
    filed = agent("batch", "--data", str(data), stdin=line)
    assert filed.returncode == 0 and json.loads(filed.stdout.splitlines()[0])["ok"], filed.stdout + filed.stderr
    status = agent("status", "--data", str(data))
    assert status.returncode == 0, status.stderr
    assert "本机事项：1 件" in status.stdout and "待上报：" in status.stdout
    offline = agent("sync", "--data", str(data))
    assert offline.returncode == 2 and "无法连接乡镇" in offline.stderr   # nothing listens: a clear error, nothing lost
