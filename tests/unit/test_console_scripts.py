"""The console scripts operators run: Chinese help, keys, and ledgers through the real entry points."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from shared.ledger_file import MAGIC, append_to_ledger, read_ledger
from shared.signing import Signer
from tests.chains import build_chain, envelopes
from tests.village_fixtures import PASSPHRASE, RECORDS_PER_FILING, make_agent, request_params

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("script", ["village-agent", "town-center", "county-hub"])
def test_each_console_script_answers_help_in_chinese(script: str) -> None:
    result = subprocess.run([str(BIN / script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "用法：" in result.stdout and "显示本帮助并退出" in result.stdout


def test_a_missing_argument_is_reported_in_chinese() -> None:
    result = subprocess.run([str(BIN / "village-agent"), "keygen"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "缺少必需的参数" in result.stderr


def _run(args: list[str], cwd: Path, passphrase: str = PASSPHRASE, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QUANCHENG_PASSPHRASE=passphrase)
    return subprocess.run([str(BIN / "village-agent"), *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=env, input=stdin)


def test_keygen_writes_a_key_that_fingerprint_reads_back(tmp_path: Path) -> None:
    made = _run(["keygen", "--key-file", "k.key"], tmp_path)
    shown = _run(["fingerprint", "--key-file", "k.key"], tmp_path)
    assert made.returncode == 0 and shown.returncode == 0
    line = next(ln for ln in made.stdout.splitlines() if ln.startswith("密钥指纹"))
    assert line in shown.stdout


def test_requests_recorded_in_batch_export_to_a_ledger_that_verifies(tmp_path: Path) -> None:
    make_agent(tmp_path / "agent")
    rng = random.Random(7)
    lines = "".join(json.dumps(request_params(rng), ensure_ascii=False) + "\n" for _ in range(5))
    batch = _run(["batch", "--data", "agent"], tmp_path, stdin=lines)
    assert batch.returncode == 0, batch.stderr
    assert all(json.loads(ln)["ok"] for ln in batch.stdout.splitlines())
    assert _run(["export", "--data", "agent", "--out", "l.qclog"], tmp_path).returncode == 0
    verified = _run(["ledger-verify", "l.qclog"], tmp_path)
    assert verified.returncode == 0 and f"共 {1 + 5 * RECORDS_PER_FILING} 条记录" in verified.stdout  # enrollment + 5 filings


def test_a_wrong_passphrase_is_refused_with_a_chinese_message(tmp_path: Path) -> None:
    make_agent(tmp_path / "agent")
    result = _run(["status", "--data", "agent"], tmp_path, passphrase="wrong-passphrase")
    assert result.returncode == 2 and "口令错误" in result.stderr


def test_an_invalid_request_names_each_bad_field_in_chinese_and_writes_nothing(tmp_path: Path) -> None:
    make_agent(tmp_path / "agent")
    result = _run(["request", "--data", "agent", "--name", "张三", "--id-number", "110105194912310021",
                   "--phone", "12345", "--address", "", "--matter", "NO-SUCH", "--authorization", "witness"], tmp_path)
    assert result.returncode == 2
    for label in ("身份证号码", "联系电话", "住址", "办理事项", "见证人姓名"):
        assert label in result.stderr
    status = _run(["status", "--data", "agent", "--json"], tmp_path)
    assert json.loads(status.stdout)["last_seq"] == 1  # only the enrollment record


def test_ledger_verify_names_the_first_tampered_record(tmp_path: Path) -> None:
    signer = Signer.generate()
    chain = envelopes(build_chain(signer, 5))
    chain[3].payload = chain[3].payload.replace(b"MZ-001", b"MZ-002")
    ledger = tmp_path / "l.qclog"
    append_to_ledger(ledger, chain)
    from shared.keys import enrollment_uri
    result = _run(["ledger-verify", "l.qclog", "--public-key-uri", enrollment_uri(signer.public_key)], tmp_path)
    assert result.returncode == 1 and "第 4 条记录" in result.stdout and "签名无效" in result.stdout


def test_a_torn_tail_from_an_interrupted_append_is_ignored_then_cut_before_the_next_append(tmp_path: Path) -> None:
    signer = Signer.generate()
    chain = envelopes(build_chain(signer, 3))
    ledger = tmp_path / "l.qclog"
    append_to_ledger(ledger, chain[:2])
    with open(ledger, "ab") as fh:
        fh.write(b"\x00\x00\x01\x00partial")  # an entry cut off mid-write
    torn = read_ledger(ledger)
    assert len(torn.envelopes) == 2 and torn.torn_tail_bytes == 11
    append_to_ledger(ledger, chain[2:])
    healed = read_ledger(ledger)
    assert [e.payload for e in healed.envelopes] == [e.payload for e in chain] and healed.torn_tail_bytes == 0
    assert ledger.read_bytes().startswith(MAGIC)
