"""The SMS gateway's HTTP hook on the township's real console app and a real SQLite file: the shared
secret (kept only as its hash), the same rules as `town-center evaluation sms`, the rate limits, and the
Chinese reply the gateway sends back."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared import cli_common
from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.domain.catalog import MatterKind
from shared.domain.evaluation import BadReason, Channel, Level
from shared.domain.handling import Role
from tests.town_fixtures import OPERATOR, VillageDevice, township
from town_center import cli
from town_center.bootstrap import TownApp, default_db_url, load_signer
from town_center.console import create_console_app
from town_center.evaluation import Evaluations
from town_center.sms_hook import SECRET_META, SMS_HOOK_PATH, new_sms_secret, sms_secret_matches
from village_agent.services import lookup_code_hash

CODE = "HK7PM-3QW9X"
PASSPHRASE = "乡镇测试口令-足够长的一句话"


@pytest.fixture
def town(tmp_path: Path) -> Iterator[TownApp]:
    app = township(f"sqlite:///{tmp_path / 'town.db'}")
    create_console_tables(app.store.engine)
    yield app
    app.close()


def _gateway(town: TownApp) -> TestClient:
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    return TestClient(create_console_app(town, auth), follow_redirects=False)


def _done(town: TownApp, *, code: str = CODE, phone: str = "13800001111") -> str:
    matter_id = VillageDevice(town).file("MZ-003", lookup_hash=lookup_code_hash(code), phone=phone)
    town.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
    town.handling.record_result(matter_id, approved=True, summary="已发放临时救助金", actor=OPERATOR)
    return matter_id


def test_the_gateway_rates_with_its_secret_by_token_or_by_code_from_the_applicants_phone(town: TownApp) -> None:
    secret = new_sms_secret(town.store)
    assert secret not in town.store.get_meta(SECRET_META)          # only its hash is kept
    evaluations = Evaluations(town.handling)
    by_token = _done(town, code="AB3CD-EF4GH")
    token = evaluations.issue_token(by_token, by="wang")
    by_code = _done(town)
    gateway = _gateway(town)
    ok = gateway.post(SMS_HOOK_PATH, headers={"X-SMS-Secret": secret}, data={"from": "+86 139 0000 9999", "text": f"评价 {token} 2"})
    assert ok.status_code == 200 and ok.text.startswith("感谢您对") and "满意" in ok.text
    assert ok.headers["content-type"].startswith("text/plain")
    # The same rules as the CLI path: a 差评 needs its reason, a 查询码 counts only from the applicant's phone.
    stranger = gateway.post(SMS_HOOK_PATH, headers={"Authorization": f"Bearer {secret}"},
                            json={"from": "13900009999", "text": "HK7PM3QW9X 1"})
    assert stranger.status_code == 200 and "不正确" in stranger.text
    no_reason = gateway.post(SMS_HOOK_PATH, headers={"X-SMS-Secret": secret}, data={"from": "13800001111", "text": f"{CODE} 5"})
    assert "原因" in no_reason.text
    bad = gateway.post(SMS_HOOK_PATH, headers={"X-SMS-Secret": secret}, data={"from": "13800001111", "text": f"{CODE} 5 态度很差"})
    assert "整改" in bad.text
    views = {v.matter_id: v for v in evaluations.views(role=Role.DIRECTOR)}
    assert views[by_token].level is Level.SATISFIED and views[by_token].channel is Channel.SMS
    assert views[by_code].reason is BadReason.ATTITUDE and views[by_code].sms_from_masked == "138****1111"


def test_a_wrong_or_missing_secret_is_refused_and_rates_nothing(town: TownApp) -> None:
    gateway = _gateway(town)
    matter_id = _done(town)
    token = Evaluations(town.handling).issue_token(matter_id, by="wang")
    unset = gateway.post(SMS_HOOK_PATH, headers={"X-SMS-Secret": "anything"}, data={"from": "13800001111", "text": f"{token} 1"})
    assert unset.status_code == 401 and unset.text == "短信接口口令不正确"    # no secret made yet: nothing gets in
    secret = new_sms_secret(town.store)
    for headers in ({}, {"X-SMS-Secret": secret[:-1] + ("A" if secret[-1] != "A" else "B")}):
        refused = gateway.post(SMS_HOOK_PATH, headers=headers, data={"from": "13800001111", "text": f"{token} 1"})
        assert refused.status_code == 401
    assert Evaluations(town.handling).views(role=Role.DIRECTOR) == []
    empty = gateway.post(SMS_HOOK_PATH, headers={"X-SMS-Secret": secret}, data={"text": f"{token} 1"})
    assert empty.status_code == 400 and "发信号码" in empty.text
    # A new secret replaces the old one.
    newer = new_sms_secret(town.store)
    assert gateway.post(SMS_HOOK_PATH, headers={"X-SMS-Secret": secret}, data={"from": "1", "text": "x"}).status_code == 401
    assert gateway.post(SMS_HOOK_PATH, headers={"X-SMS-Secret": newer},
                        data={"from": "13800001111", "text": f"{token} 1"}).status_code == 200


def test_one_phone_sending_too_often_is_slowed_with_a_chinese_reply_and_others_still_get_through(town: TownApp) -> None:
    secret = new_sms_secret(town.store)
    gateway = _gateway(town)
    answers = [gateway.post(SMS_HOOK_PATH, headers={"X-SMS-Secret": secret}, data={"from": "13700007777", "text": "你好"})
               for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert "评价码" in answers[0].text                                     # the help text for a reply with no code
    assert answers[-1].text == "您发送的评价短信过于频繁，请稍后再发" and int(answers[-1].headers["Retry-After"]) >= 1
    other = gateway.post(SMS_HOOK_PATH, headers={"X-SMS-Secret": secret}, data={"from": "13600006666", "text": "你好"})
    assert other.status_code == 200


def test_the_cli_makes_the_gateways_secret_shows_it_once_and_says_how_to_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(cli_common.PASSPHRASE_ENV, PASSPHRASE)
    home = tmp_path / "home"
    assert cli.main(["init", "--home", str(home)]) == 0
    capsys.readouterr()
    assert cli.main(["evaluation", "sms-secret", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert SMS_HOOK_PATH in out and "只显示这一次" in out
    secret = out.split("：", 1)[1].split()[0]
    town = township(default_db_url(home), signer=load_signer(home, PASSPHRASE))
    try:
        assert sms_secret_matches(town.store, secret) and not sms_secret_matches(town.store, secret + "x")
    finally:
        town.close()
