"""A ledger file (an export, or one carried on a USB stick) is readable by its owner only, whatever the umask."""
from __future__ import annotations

import os
from pathlib import Path

from shared.ledger_file import append_to_ledger, read_ledger
from shared.wire.v1 import envelope_pb2


def test_a_new_ledger_is_created_owner_only_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "台账.qclog"
        append_to_ledger(path, [envelope_pb2.Envelope(payload=b"x", signature=b"s", key_id="k")])
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(read_ledger(path).envelopes) == 1


def test_appending_to_a_world_readable_ledger_makes_it_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "old.qclog"
    append_to_ledger(path, [])
    path.chmod(0o644)
    append_to_ledger(path, [envelope_pb2.Envelope(payload=b"y", signature=b"s", key_id="k")])
    assert path.stat().st_mode & 0o777 == 0o600
