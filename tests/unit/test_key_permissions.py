"""Key files are owner-only: written 0600, and refused on load (POSIX) when group or others may read them."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from shared import keys, signing
from shared.errors import KeyFileError
from tests.village_fixtures import PASSPHRASE, make_agent
from village_agent.bootstrap import open_agent

FAST_N = 2**14
posix_only = pytest.mark.skipif(os.name == "nt", reason="Windows has no POSIX mode bits; the check is skipped there")


def _key(tmp_path: Path) -> Path:
    path = tmp_path / "device.key"
    keys.save_key_file(path, signing.Signer.generate(), PASSPHRASE, scrypt_n=FAST_N)
    return path


@posix_only
def test_a_saved_key_file_is_owner_only_and_loads(tmp_path: Path) -> None:
    path = _key(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert keys.load_key_file(path, PASSPHRASE).key_id


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666, 0o610])
def test_a_key_file_others_may_access_is_refused_naming_the_file_and_the_chmod_fix(tmp_path: Path, mode: int) -> None:
    path = _key(tmp_path)
    path.chmod(mode)
    with pytest.raises(KeyFileError) as refused:
        keys.load_key_file(path, PASSPHRASE)
    message = str(refused.value)
    assert str(path) in message and f"chmod 600 {path}" in message and "权限过宽" in message and f"{mode:o}" in message


@posix_only
def test_after_chmod_600_the_same_key_file_loads_again(tmp_path: Path) -> None:
    path = _key(tmp_path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError):
        keys.load_key_file(path, PASSPHRASE)
    path.chmod(0o600)
    assert keys.load_key_file(path, PASSPHRASE).key_id
    path.chmod(0o400)                       # read-only for the owner is fine too
    assert keys.load_key_file(path, PASSPHRASE).key_id


@posix_only
def test_the_mode_is_checked_before_the_passphrase_so_a_wrong_passphrase_does_not_hide_it(tmp_path: Path) -> None:
    path = _key(tmp_path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="权限过宽"):
        keys.load_key_file(path, "not-the-passphrase")


def test_a_missing_key_file_is_still_reported_as_missing(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="找不到密钥文件"):
        keys.load_key_file(tmp_path / "nowhere.key", PASSPHRASE)


def test_on_windows_the_mode_check_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _key(tmp_path)
    if os.name != "nt":
        path.chmod(0o644)
    monkeypatch.setattr(keys.os, "name", "nt")
    keys.check_private_file_mode(path)      # no error: NTFS ACLs are the profile folder's business


@posix_only
def test_a_village_laptop_whose_key_was_copied_world_readable_refuses_to_open_until_fixed(tmp_path: Path) -> None:
    root = tmp_path / "agent"
    make_agent(root)
    copied = tmp_path / "copied"
    shutil.copytree(root, copied)
    (copied / "device.key").chmod(0o644)    # e.g. unpacked from an archive with a careless umask
    with pytest.raises(KeyFileError, match=r"device\.key.*chmod 600"):
        open_agent(copied, PASSPHRASE)
    (copied / "device.key").chmod(0o600)
    service = open_agent(copied, PASSPHRASE)
    service.store.close()


@posix_only
def test_the_command_line_prints_the_refusal_in_chinese(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from town_center import cli

    path = _key(tmp_path)
    path.chmod(0o664)
    monkeypatch.setenv("QUANCHENG_PASSPHRASE", PASSPHRASE)
    assert cli.main(["fingerprint", "--key-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("错误：") and f"chmod 600 {path}" in err
