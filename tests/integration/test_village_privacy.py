"""A stolen laptop must not reveal past applicants: no ID number or name in plain text anywhere in the data folder."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from shared.domain import id_number
from tests.village_fixtures import PASSPHRASE, make_agent, request_params

BIN = Path(sys.executable).parent


def _all_bytes_under(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in root.rglob("*") if p.is_file()]


def test_after_a_hundred_requests_no_id_number_or_name_is_readable_in_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "agent"
    make_agent(data)
    rng = random.Random(100)
    requests = [request_params(rng) for _ in range(100)]
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests)
    env = dict(os.environ, QUANCHENG_PASSPHRASE=PASSPHRASE, TMPDIR=str(data))  # temp files land in the scanned folder
    result = subprocess.run([str(BIN / "village-agent"), "batch", "--data", str(data)], input=lines, text=True,
                            capture_output=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-500:]
    # The log folder and any WAL/SHM file stay in place: the scan sees what a thief would.
    files = _all_bytes_under(data)
    assert any(p.name == "agent.db" for p, _ in files)
    for path, blob in files:
        for candidate in id_number.CANDIDATE_PATTERN.findall(blob):
            assert not id_number.is_valid(candidate.decode()), f"valid ID number in {path.name}"
        for r in requests:
            assert r["name"].encode() not in blob, f"applicant name in {path.name}"
            assert r["phone"].encode() not in blob, f"applicant phone in {path.name}"
    assert "身份证" not in result.stderr


def test_the_agent_itself_can_still_show_the_name_and_find_earlier_matters_by_id(tmp_path: Path) -> None:
    from village_agent import actions
    from village_agent.bootstrap import open_agent

    data = tmp_path / "agent"
    make_agent(data)
    service = open_agent(data, PASSPHRASE)
    try:
        params = request_params(random.Random(5))
        params.pop("action")
        filed = actions.request(service, params)
        assert service.applicant(filed["matter_id"]).name == params["name"]
        earlier = service.earlier_matters(params["id_number"])
        assert [m.matter_id for m in earlier] == [filed["matter_id"]]
        assert earlier[0].id_masked == id_number.mask(params["id_number"])
    finally:
        service.store.close()
