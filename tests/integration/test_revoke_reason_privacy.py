"""A key revocation's reason is signed in clear (the township's key_revoked record reaches every
village) and kept on the key row: like every other free text, it refuses an ID or mobile number with
a Chinese message, and the key stays as it was. Township: services, console page, JSON API; county:
store, board page, JSON API, command line."""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hub import cli as hub_cli
from hub.console import create_console_app as county_console
from hub.errors import StoreError as CountyStoreError
from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.domain.handling import Role
from shared.relay.ports import KeyState
from tests.county_fixtures import County, LinkedTownship
from tests.town_fixtures import VillageDevice
from town_center import cli as town_cli
from town_center.console import create_console_app as town_console
from town_center.console import start_console_server
from town_center.errors import StoreError as TownStoreError

PASSWORD = "县政务中心2026冬季值班"
ID_NUMBER = "11010519491231002X"
MOBILE = "13907310001"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Servers:
    town_url: str
    county_url: str
    tmp: Path

    def api(self, tier: str, capsys: pytest.CaptureFixture[str]) -> httpx.Client:
        main, db, base = ((town_cli.main, "town.db", self.town_url) if tier == "town"
                          else (hub_cli.main, "county.db", self.county_url))
        capsys.readouterr()
        assert main(["staff", "token", "create", "chen", "--home", str(self.tmp), "--db",
                     f"sqlite:///{self.tmp / db}"]) == 0
        token = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("qc_"))
        return httpx.Client(base_url=f"{base}/api", headers={"Authorization": f"Bearer {token}"}, timeout=10)

    @contextmanager
    def signed_in(self, tier: str) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=self.town_url if tier == "town" else self.county_url, timeout=10) as client:
            token = _CSRF.search(client.get("/login").text)
            assert token is not None
            done = client.post("/login", data={"staff_id": "chen", "password": PASSWORD, "next": "/",
                                               "csrf_token": token.group(1)})
            assert done.status_code == 303, done.text
            yield client


@pytest.fixture()
def servers(tmp_path: Path, hub: County, town: LinkedTownship) -> Iterator[Servers]:
    fast = ScryptParams(n=2**10, r=8, p=1)
    for engine, clock_ in ((hub.app.store.engine, hub.app.clock), (town.app.store.engine, town.app.clock)):
        create_console_tables(engine)
        ConsoleAuth(engine, clock_, kdf=fast).create_staff("chen", "陈主任", Role.DIRECTOR, PASSWORD)
    county_server = start_console_server(county_console(hub.app, ConsoleAuth(hub.app.store.engine, hub.app.clock,
                                                                             kdf=fast)), "127.0.0.1:0")
    town_server = start_console_server(town_console(town.app, ConsoleAuth(town.app.store.engine, town.app.clock,
                                                                          kdf=fast)), "127.0.0.1:0")
    try:
        yield Servers(f"http://127.0.0.1:{town_server.port}", f"http://127.0.0.1:{county_server.port}", tmp_path)
    finally:
        town_server.stop()
        county_server.stop()


def _state(keys: list, key_id: str) -> KeyState:
    return next(k.state for k in keys if k.key_id == key_id)


def test_the_township_refuses_a_revocation_reason_with_an_id_or_mobile_number_everywhere(
        servers: Servers, town: LinkedTownship, capsys: pytest.CaptureFixture[str]) -> None:
    village = VillageDevice(town.app)
    key_id = village.signer.key_id
    with pytest.raises(TownStoreError, match="吊销原因.*身份证号"):
        town.app.services.revoke(key_id, by="chen", reason=f"笔记本丢失，持有人身份证 {ID_NUMBER}")
    with servers.api("town", capsys) as api:
        refused = api.post(f"/agents/{key_id}/revoke", json={"reason": f"笔记本丢失，请联系 {MOBILE}"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "personal_data"
        assert "手机号" in refused.json()["message"] and MOBILE not in refused.json()["message"]
    with servers.signed_in("town") as page:
        form = _CSRF.search(page.get("/agents").text)
        assert form is not None
        answer = page.post(f"/agents/{key_id}/revoke", data={"csrf_token": form.group(1),
                                                            "reason": f"丢失，联系人 {MOBILE[:3]} {MOBILE[3:7]} {MOBILE[7:]}"},
                           follow_redirects=True)
        assert "手机号" in answer.text
    assert _state(town.app.services.list_agents(), key_id) is KeyState.APPROVED
    assert MOBILE not in str(town.app.services.list_agents())

    with servers.api("town", capsys) as api:
        done = api.post(f"/agents/{key_id}/revoke", json={"reason": "笔记本丢失"})
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "revoked" and done.json()["status_reason"] == "笔记本丢失"


def test_the_county_refuses_a_link_key_revocation_reason_with_an_id_or_mobile_number_everywhere(
        servers: Servers, hub: County, town: LinkedTownship, capsys: pytest.CaptureFixture[str]) -> None:
    key_id = next(k.key_id for k in hub.app.store.keys() if k.state is KeyState.APPROVED)   # the township's link key
    with pytest.raises(CountyStoreError, match="吊销原因"):
        hub.app.store.revoke(key_id, by="chen", reason=f"服务器失窃，报案人 {MOBILE}", now_ms=0)
    with servers.api("county", capsys) as api:
        refused = api.post(f"/townships/{key_id}/revoke", json={"reason": f"密钥泄露 {ID_NUMBER}"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "personal_data" and ID_NUMBER not in refused.text
    with servers.signed_in("county") as page:
        form = _CSRF.search(page.get("/townships").text)
        assert form is not None
        answer = page.post(f"/townships/{key_id}/revoke", data={"csrf_token": form.group(1),
                                                               "reason": f"服务器失窃 +86 {MOBILE}"},
                           follow_redirects=True)
        assert answer.status_code == 200 and "手机号" in answer.text
    capsys.readouterr()
    assert hub_cli.main(["townships", "revoke", key_id, "--by", "chen", "--reason", f"失窃 {ID_NUMBER}", "--home", str(servers.tmp),
                         "--db", f"sqlite:///{servers.tmp / 'county.db'}"]) != 0
    said = capsys.readouterr()
    assert "身份证号" in said.out + said.err and ID_NUMBER not in said.out + said.err
    assert _state(hub.app.store.keys(), key_id) is KeyState.APPROVED
    assert ID_NUMBER not in str(hub.app.store.keys()) and MOBILE not in str(hub.app.store.keys())
