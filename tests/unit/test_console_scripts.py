"""The console scripts operators run: Chinese help, keys, and ledgers through the real entry points."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.ledger_file import MAGIC, append_to_ledger, read_ledger
from shared.signing import Signer
from tests.chains import build_chain, envelopes

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("script", ["village-agent", "town-center", "county-hub"])
def test_each_console_script_answers_help_in_chinese(script: str) -> None:
    result = subprocess.run([str(BIN / script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "用法：" in result.stdout and "keygen" in result.stdout and "显示本帮助并退出" in result.stdout


def test_a_missing_argument_is_reported_in_chinese() -> None:
    result = subprocess.run([str(BIN / "village-agent"), "keygen"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "缺少必需的参数" in result.stderr


def _run(args: list[str], tmp: Path, passphrase: str = "demo-passphrase") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QUANCHENG_PASSPHRASE=passphrase)
    return subprocess.run([str(BIN / "village-agent"), *args], capture_output=True, text=True, timeout=120, cwd=tmp, env=env)


def test_keygen_then_demo_ledger_twice_grows_one_chain_that_verifies(tmp_path: Path) -> None:
    assert _run(["keygen", "--key-file", "k.key"], tmp_path).returncode == 0
    for _ in range(2):
        result = _run(["demo-ledger", "--key-file", "k.key", "--ledger", "l.qclog", "--count", "4"], tmp_path)
        assert result.returncode == 0, result.stderr
    verified = _run(["ledger-verify", "l.qclog"], tmp_path)
    assert verified.returncode == 0 and "共 9 条记录" in verified.stdout


def test_a_wrong_passphrase_is_refused_with_a_chinese_message_and_writes_nothing(tmp_path: Path) -> None:
    assert _run(["keygen", "--key-file", "k.key"], tmp_path).returncode == 0
    result = _run(["demo-ledger", "--key-file", "k.key", "--ledger", "l.qclog"], tmp_path, passphrase="wrong-passphrase")
    assert result.returncode == 2 and "口令错误" in result.stderr
    assert not (tmp_path / "l.qclog").exists()


def test_ledger_verify_names_the_first_tampered_record(tmp_path: Path) -> None:
    assert _run(["keygen", "--key-file", "k.key"], tmp_path).returncode == 0
    assert _run(["demo-ledger", "--key-file", "k.key", "--ledger", "l.qclog", "--count", "5"], tmp_path).returncode == 0
    ledger = tmp_path / "l.qclog"
    contents = read_ledger(ledger)
    contents.envelopes[3].payload = contents.envelopes[3].payload.replace("示例".encode(), "伪造".encode())
    ledger.unlink()
    append_to_ledger(ledger, contents.envelopes)
    result = _run(["ledger-verify", "l.qclog"], tmp_path)
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
