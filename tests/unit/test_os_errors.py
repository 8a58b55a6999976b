"""What the operating system says goes to users in Chinese, never the C library's English."""
from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import KeyFileError
from shared.keys import load_key_file
from shared.os_errors import os_error_zh


def test_common_errors_have_a_chinese_reason_and_unknown_ones_a_generic_one() -> None:
    assert os_error_zh(PermissionError(13, "Permission denied")) == "没有访问权限"
    assert os_error_zh(OSError(28, "No space left on device")) == "磁盘空间不足"
    assert os_error_zh(OSError(99999, "Something odd")) == "系统错误"


def test_a_key_path_that_is_a_directory_is_reported_in_chinese(tmp_path: Path) -> None:
    folder = tmp_path / "device.key"
    folder.mkdir(mode=0o700)
    with pytest.raises(KeyFileError) as caught:
        load_key_file(folder, "passphrase")
    assert "目录" in str(caught.value) and "Is a directory" not in str(caught.value)
