"""The township's agents page (issue 15): a pending enrollment shows its fingerprint prominently,
approving needs the fingerprint's last group typed in (a look-alike name cannot be approved by a
click), and a village code held by two pending or approved keys is flagged."""
from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from shared.envelope import GENESIS, sign_next
from shared.keys import fingerprint
from shared.relay.ports import KeyState
from shared.signing import Signer
from shared.wire.v1 import relay_pb2
from tests.relay_fakes import enrollment_record
from tests.unit.test_town_console import auth, client_for, csrf, town, village, web  # noqa: F401 - fixtures
from town_center.bootstrap import TownApp


def _enrol(town: TownApp, village_code: str, holder: str) -> Signer:
    signer = Signer.generate()
    record = enrollment_record(signer, village_code)
    record.key_enrollment_requested.holder_name = holder
    town.core.enroll(relay_pb2.EnrollRequest(enrollment=sign_next(signer, record, GENESIS, 0).envelope), peer="10.0.0.5")
    return signer


def _notice(client: TestClient, response) -> str:
    return client.get(response.headers["location"]).text


def test_a_look_alike_enrollment_needs_its_fingerprint_and_its_village_clash_is_flagged(web, town: TownApp, village) -> None:
    look_alike = _enrol(town, "V001", "代办员V001")      # the same village and name as the enrolled laptop
    client = client_for(web, "zhao")
    page = client.get("/agents").text
    shown = fingerprint(look_alike.public_key)
    assert "待审批的登记（1）" in page and f"<strong><code>{shown}</code></strong>" in page
    assert "村代码 V001 已有其他设备" in page and "村代码重复" in page
    url = f"/agents/{look_alike.key_id}/approve"
    for typed in ("", "00000" if not shown.endswith("00000") else "11111", shown.split()[0]):
        response = client.post(url, data={"csrf_token": csrf(client), "fingerprint_check": typed})
        assert response.status_code == 303 and "指纹核对不符" in _notice(client, response)
    assert town.store.author(look_alike.key_id).state is KeyState.PENDING
    response = client.post(url, data={"csrf_token": csrf(client), "fingerprint_check": shown.split()[-1]})
    assert "已批准" in _notice(client, response)
    assert town.store.author(look_alike.key_id).state is KeyState.APPROVED


def test_a_pending_enrollment_from_another_village_is_not_flagged(web, town: TownApp, village) -> None:
    _enrol(town, "V002", "王五")
    page = client_for(web, "admin").get("/agents").text
    assert "待审批的登记（1）" in page and "村代码重复" not in page and "已有其他设备" not in page
    assert re.search(r'name="fingerprint_check"[^>]*pattern="\[0-9\]\{5\}"', page)


def test_the_cli_flags_a_village_code_clash_and_refuses_a_wrong_fingerprint(tmp_path: Path, capsys) -> None:
    from tests.relay_fakes import PASSPHRASE, init_town
    from town_center.bootstrap import build_app, load_signer
    from town_center.cli import main as town_center

    home = tmp_path / "town"
    init_town(home)
    db = f"sqlite:///{home / 'town.db'}"
    app = build_app(db, load_signer(home, PASSPHRASE))
    try:
        first, look_alike = _enrol(app, "V001", "代办员甲"), _enrol(app, "V001", "代办员甲")
    finally:
        app.close()
    capsys.readouterr()
    assert town_center(["agents", "list", "--home", str(home), "--db", db]) == 0
    assert capsys.readouterr().out.count("村代码 V001 还有其他待审批或已批准的设备") == 2
    held = fingerprint(look_alike.public_key)
    wrong = "00000" if not held.endswith("00000") else "11111"
    args = ["agents", "approve", look_alike.key_id, "--home", str(home), "--db", db, "--by", "赵主任",
            "--passphrase-file", str(home / "pass")]
    assert town_center([*args, "--fingerprint", wrong]) == 1 and "指纹核对不符" in capsys.readouterr().out
    assert town_center([*args, "--fingerprint", held.split()[-1]]) == 0 and held in capsys.readouterr().out
    assert first.key_id != look_alike.key_id


def test_a_pending_enrollment_older_than_the_expiry_leaves_the_page(web, town: TownApp) -> None:
    import datetime as dt

    _enrol(town, "V003", "赵六")
    client = client_for(web, "admin")
    assert "待审批的登记（1）" in client.get("/agents").text
    town.clock.advance(dt.timedelta(days=15))
    page = client_for(web, "admin").get("/agents").text      # signed in again: the session has expired too
    assert "代办员设备" in page and "待审批的登记" not in page and town.store.keys(KeyState.PENDING) == []
