"""The detector that keeps ID and mobile numbers out of free text (shared.domain.personal_data)."""
from __future__ import annotations

import pytest

from shared.domain import id_number
from shared.domain.personal_data import (
    PersonalDataKind,
    contains_personal_data,
    find_personal_data,
    personal_data_problem,
)

ID18 = id_number.with_check_char("33010619900101123")
WRONG_CHECK = ID18[:17] + ("0" if ID18[17] != "0" else "1")


@pytest.mark.parametrize("text", [
    f"申请人身份证{ID18}，请核对",
    f"身份证 {ID18[:6]} {ID18[6:14]} {ID18[14:]}",
    f"证号{ID18[:6]}-{ID18[6:14]}-{ID18[14:]}",
    f"证号{ID18.lower()}",
    "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in f"全角{ID18}"),
    "老身份证330106900101123",
])
def test_an_id_number_in_any_common_spelling_is_found(text: str) -> None:
    assert [f.kind for f in find_personal_data(text)] == [PersonalDataKind.ID_NUMBER]


@pytest.mark.parametrize("text", [
    "请联系13812345678",
    "电话 138 1234 5678",
    "电话138-1234-5678",
    "+86 13812345678 找王大爷",
    "+8613812345678",
    "008613812345678",
    "86-13812345678",
    "打１３８１２３４５６７８",
])
def test_a_mobile_number_with_or_without_separators_and_country_code_is_found(text: str) -> None:
    assert [f.kind for f in find_personal_data(text)] == [PersonalDataKind.MOBILE]


@pytest.mark.parametrize("text", [
    "",
    "申请人行动不便，需上门服务",
    f"号码{WRONG_CHECK}校验位不对",
    "固定电话0571-88886666",
    "12345678901",                    # 12x is not a mobile prefix
    "订单号 138123456789",            # twelve digits: not a mobile
    "2026-12-01 前补交户口簿",
    "时间戳1764921234567",
    "老号码990106900101123",          # area codes begin 1–8
    "老号码330106901301123",          # month 13
])
def test_ordinary_text_and_near_misses_are_not_personal_data(text: str) -> None:
    assert not contains_personal_data(text)


def test_an_id_and_a_mobile_in_one_text_are_both_found_in_order() -> None:
    found = find_personal_data(f"电话13812345678，身份证{ID18}")
    assert [f.kind for f in found] == [PersonalDataKind.MOBILE, PersonalDataKind.ID_NUMBER]


def test_the_refusal_names_the_field_and_the_kinds_but_never_echoes_the_number() -> None:
    problem = personal_data_problem(f"电话13812345678，身份证{ID18}", "撤回原因")
    assert problem is not None
    assert "撤回原因" in problem and "身份证号码" in problem and "手机号码" in problem
    assert "13812345678" not in problem and ID18 not in problem
    assert personal_data_problem("群众自愿撤回", "撤回原因") is None
