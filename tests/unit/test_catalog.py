"""The service catalogue: the shipped file, validation of bad files, and the materials assessment
behind one-time notification 一次性告知."""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.catalog import load_catalog, shipped_catalog_text
from shared.domain.catalog import (
    Catalog,
    CatalogItem,
    HopLimits,
    IntakeOutcome,
    Material,
    MaterialsInputError,
    MatterKind,
    StatutorySource,
    Tier,
    UnknownItemError,
    UnknownMaterialError,
    assess_materials,
    build_catalog,
    parse_catalog,
)
from shared.domain.limits import Limit, LimitUnit
from shared.errors import CatalogError

SHIPPED = load_catalog()


# ----------------------------------------------------------------------------------------- helpers


def _hop(statutory: str, promised: str, source: str = "local") -> dict[str, Any]:
    return {"statutory": statutory, "promised": promised, "statutory_source": source}


def _item(code: str = "MZ-101", **overrides: Any) -> dict[str, Any]:
    """A valid county-decided item in the shape of the TOML file."""
    item: dict[str, Any] = {
        "code": code,
        "name": "测试事项",
        "category": "社会救助",
        "department": "县民政局",
        "decided_by": "county",
        "typical_kind": "reported",
        "door_to_door": True,
        "fee": "不收费",
        "legal_basis": "《社会救助暂行办法》",
        "limits": {
            "village": _hop("2wd", "1wd"),
            "township": _hop("20wd", "15wd"),
            "county": _hop("10wd", "7wd", "statute"),
        },
        "main_materials": [
            {"id": "id_card", "name": "居民身份证"},
            {"id": "application_form", "name": "申请书"},
        ],
        "auxiliary_materials": [
            {"id": "bank_account", "name": "银行账户", "tolerated_missing": True},
            {"id": "income_proof", "name": "收入证明"},
            {"id": "agent_id_card", "name": "代办人身份证", "condition": "委托他人申请的"},
        ],
    }
    item.update(overrides)
    return item


def _data(*items: dict[str, Any]) -> dict[str, Any]:
    return {"version": "test-1", "source": "测试数据", "items": list(items) or [_item()]}


def _refusal(data: dict[str, Any]) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        build_catalog(data)
    return info.value


def _test_item(**overrides: Any) -> CatalogItem:
    return build_catalog(_data(_item(**overrides))).items[0]


# ------------------------------------------------------------------------------- the shipped file


def test_the_shipped_catalogue_loads_with_at_least_twenty_two_matters() -> None:
    assert len(SHIPPED) >= 22
    assert SHIPPED.version
    assert "法定" in SHIPPED.source or "statute" in SHIPPED.source


def test_the_shipped_catalogue_is_loaded_from_package_data_and_equals_a_fresh_parse() -> None:
    assert parse_catalog(shipped_catalog_text()) == SHIPPED
    assert load_catalog() is load_catalog()  # parsed once per process


def test_every_shipped_matter_starts_in_the_village_and_reaches_its_deciding_tier() -> None:
    for item in SHIPPED:
        assert item.tiers[0] is Tier.VILLAGE, item.code
        assert item.tiers[-1] is item.decided_by, item.code
        assert item.deciding_hop is item.limits[item.decided_by]


def test_every_shipped_promised_limit_lies_within_its_statutory_limit() -> None:
    for item in SHIPPED:
        for tier in item.tiers:
            hop = item.hop(tier)
            assert hop.promised.fits_within(hop.statutory), (item.code, tier)


def test_shipped_promised_matters_promise_at_least_one_working_day_where_they_are_decided() -> None:
    # 承诺件 are matters needing 1 working day or more (000); otherwise they would be 即办件.
    for item in SHIPPED:
        if item.typical_kind is MatterKind.PROMISED:
            assert Limit.working_days(1).fits_within(item.deciding_hop.promised), item.code
        if item.typical_kind is MatterKind.IMMEDIATE:
            assert item.deciding_hop.promised.unit is LimitUnit.OFFICE_MINUTES, item.code


def test_the_shipped_catalogue_covers_the_core_rural_matters() -> None:
    names = " ".join(i.name for i in SHIPPED)
    for expected in (
        "城乡居民基本养老保险参保登记",
        "最低生活保障",
        "临时救助",
        "残疾人证",
        "高龄津贴",
        "特困人员",
        "宅基地",
        "出生登记",
        "异地就医备案",
        "生育登记",
        "耕地地力保护补贴",
        "城乡居民基本医疗保险参保",
        "残疾人两项补贴",
        "优抚",
        "危房改造",
        "林木采伐",
        "婚姻登记",
    ):
        assert expected in names, expected


def test_the_shipped_catalogue_uses_every_tier_and_every_typical_kind() -> None:
    assert {i.decided_by for i in SHIPPED} == set(Tier)
    assert {i.typical_kind for i in SHIPPED} == {
        MatterKind.IMMEDIATE,
        MatterKind.PROMISED,
        MatterKind.REPORTED,
        MatterKind.JOINT,
    }


def test_the_shipped_catalogue_says_which_statutory_figures_are_law_and_which_are_local() -> None:
    sources = {hop.statutory_source for item in SHIPPED for hop in item.limits.values()}
    assert sources == {StatutorySource.STATUTE, StatutorySource.LOCAL}
    # A figure marked as statute must come with a citation in the item's legal basis.
    for item in SHIPPED:
        if any(h.statutory_source is StatutorySource.STATUTE for h in item.limits.values()):
            assert "法》" in item.legal_basis, item.code


def test_every_shipped_matter_has_a_fee_a_cited_legal_basis_and_main_materials() -> None:
    for item in SHIPPED:
        assert item.fee and item.main_materials, item.code
        assert "《" in item.legal_basis, item.code
    assert sum("不收费" in i.fee for i in SHIPPED) > len(SHIPPED) // 2


def test_shipped_joint_matters_name_at_least_two_departments() -> None:
    joint = [i for i in SHIPPED if i.typical_kind is MatterKind.JOINT]
    assert joint
    for item in joint:
        assert len(item.departments) >= 2, item.code


def test_an_item_is_found_by_its_code_and_the_catalogue_iterates_in_file_order() -> None:
    item = SHIPPED.item("MZ-001")
    assert item.name == "最低生活保障申请"
    assert item.decided_by is Tier.COUNTY
    assert "MZ-001" in SHIPPED and "XX-999" not in SHIPPED and 42 not in SHIPPED
    assert [i.code for i in SHIPPED] == list(SHIPPED.codes)


def test_an_unknown_code_raises_a_chinese_lookup_error_naming_the_code() -> None:
    with pytest.raises(UnknownItemError) as info:
        SHIPPED.item("XX-999")
    assert isinstance(info.value, CatalogError) and isinstance(info.value, LookupError)
    assert info.value.item == "XX-999"
    assert "XX-999" in str(info.value) and "没有" in str(info.value)


def test_a_catalogue_file_on_disk_is_loaded_from_its_path(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(shipped_catalog_text(), encoding="utf-8")
    assert load_catalog(path) == SHIPPED


def test_a_missing_catalogue_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as info:
        load_catalog(tmp_path / "absent.toml")
    assert (info.value.item, info.value.field) == ("文件", "path")


# -------------------------------------------------------------------------------- invalid files


def _without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["items"][0].pop(key)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["items"][0].__setitem__(key, value)


def _set_hop(tier: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["items"][0]["limits"][tier].__setitem__(key, value)


INVALID_ITEM_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("missing name", _without("name"), "MZ-101", "name"),
    ("blank name", _set("name", "   "), "MZ-101", "name"),
    ("empty fee", _set("fee", ""), "MZ-101", "fee"),
    ("missing legal basis", _without("legal_basis"), "MZ-101", "legal_basis"),
    ("missing code", _without("code"), "第1项", "code"),
    ("malformed code", _set("code", "mz1"), "第1项", "code"),
    ("unknown decided_by", _set("decided_by", "province"), "MZ-101", "decided_by"),
    ("unknown typical_kind", _set("typical_kind", "urgent"), "MZ-101", "typical_kind"),
    ("supplement is not a typical kind", _set("typical_kind", "supplement"), "MZ-101", "typical_kind"),
    ("malformed limit", _set_hop("township", "promised", "5 days"), "MZ-101", "limits.township.promised"),
    ("limit given as a number", _set_hop("village", "statutory", 2), "MZ-101", "limits.village.statutory"),
    ("zero limit", _set_hop("county", "statutory", "0wd"), "MZ-101", "limits.county.statutory"),
    ("unknown statutory source", _set_hop("county", "statutory_source", "rumour"), "MZ-101", "limits.county.statutory_source"),
    ("misspelt hop key", _set_hop("county", "promissed", "1wd"), "MZ-101", "limits.county.promissed"),
    ("unknown tier", lambda d: d["items"][0]["limits"].__setitem__("province", _hop("1wd", "1wd")), "MZ-101", "limits.province"),
    ("county decision without county hop", lambda d: d["items"][0]["limits"].pop("county"), "MZ-101", "limits.county"),
    ("no village hop", lambda d: d["items"][0]["limits"].pop("village"), "MZ-101", "limits.village"),
    ("township decision with a county hop", lambda d: d["items"][0].update(decided_by="township", typical_kind="promised"),
     "MZ-101", "limits.county"),
    ("county decision typically taken as a promise", _set("typical_kind", "promised"), "MZ-101", "typical_kind"),
    ("village decision typically escalated", lambda d: d["items"][0].update(decided_by="village"), "MZ-101", "typical_kind"),
    ("empty main materials", _set("main_materials", []), "MZ-101", "main_materials"),
    (
        "duplicate main material id",
        lambda d: d["items"][0]["main_materials"].append({"id": "id_card", "name": "身份证复印件"}),
        "MZ-101",
        "main_materials[2].id",
    ),
    (
        "auxiliary id repeating a main one",
        lambda d: d["items"][0]["auxiliary_materials"].insert(0, {"id": "application_form", "name": "申请书副本"}),
        "MZ-101",
        "auxiliary_materials[0].id",
    ),
    (
        "material id not a slug",
        lambda d: d["items"][0]["main_materials"][0].__setitem__("id", "身份证"),
        "MZ-101",
        "main_materials[0].id",
    ),
    (
        "material without a name",
        lambda d: d["items"][0]["auxiliary_materials"][1].pop("name"),
        "MZ-101",
        "auxiliary_materials[1].name",
    ),
    (
        "a main material tolerated missing",
        lambda d: d["items"][0]["main_materials"][0].__setitem__("tolerated_missing", True),
        "MZ-101",
        "main_materials[0].tolerated_missing",
    ),
    ("door_to_door not a boolean", _set("door_to_door", "是"), "MZ-101", "door_to_door"),
    ("joint matter without departments", lambda d: (d["items"][0].update(decided_by="township", typical_kind="joint"),
                                                    d["items"][0]["limits"].pop("county")), "MZ-101", "departments"),
    ("joint matter with one department", lambda d: (d["items"][0].update(decided_by="township", typical_kind="joint",
                                                                         departments=["县民政局"]),
                                                    d["items"][0]["limits"].pop("county")), "MZ-101", "departments"),
    ("site inspection declared not counted", _set("not_counted", [{"what": "现场勘查", "basis": "本县规定"}]), "MZ-101",
     "not_counted[0].what"),
    ("not-counted period without a basis", _set("not_counted", [{"what": "公示"}]), "MZ-101", "not_counted[0].basis"),
    ("unknown item field", _set("fees", "不收费"), "MZ-101", "fees"),
]


@pytest.mark.parametrize(
    ("mutate", "item", "field"),
    [pytest.param(m, i, f, id=name) for name, m, i, f in INVALID_ITEM_CASES],
)
def test_each_kind_of_invalid_item_is_refused_naming_item_and_field(
    mutate: Callable[[dict[str, Any]], None], item: str, field: str
) -> None:
    data = _data(_item())
    mutate(data)
    error = _refusal(data)
    assert (error.item, error.field) == (item, field)
    # The message is for the county's data officer: Chinese, naming both.
    assert item in str(error) and field in str(error) and "服务事项目录错误" in str(error)


def test_a_promised_limit_longer_than_statutory_is_refused_naming_item_and_field() -> None:
    data = _data(_item())
    data["items"][0]["limits"]["township"] = _hop("10wd", "15wd")
    error = _refusal(data)
    assert (error.item, error.field) == ("MZ-101", "limits.township.promised")
    assert "超过法定时限" in str(error)


def test_a_promised_limit_in_another_unit_is_compared_by_its_approximate_size() -> None:
    data = _data(_item())
    data["items"][0]["limits"]["village"] = _hop("60m", "1wd")
    assert _refusal(data).field == "limits.village.promised"
    data["items"][0]["limits"]["village"] = _hop("1wd", "30m")
    assert build_catalog(data).items[0].hop(Tier.VILLAGE).promised == Limit.minutes(30)


def test_duplicate_codes_are_refused_naming_the_repeated_code() -> None:
    error = _refusal(_data(_item("MZ-101"), _item("MZ-102"), _item("MZ-101")))
    assert (error.item, error.field) == ("MZ-101", "code")
    assert "第1项" in str(error) and "第3项" in str(error)


def test_an_item_without_a_code_is_named_by_its_position() -> None:
    second = _item("MZ-102")
    del second["code"]
    error = _refusal(_data(_item("MZ-101"), second))
    assert (error.item, error.field) == ("第2项", "code")


def test_the_same_material_id_may_appear_in_different_items() -> None:
    catalog = build_catalog(_data(_item("MZ-101"), _item("MZ-102")))
    assert [i.code for i in catalog] == ["MZ-101", "MZ-102"]


def test_a_toml_syntax_error_is_refused_as_a_file_error() -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog('version = "1"\n[[items]\ncode = "MZ-001"\n')
    assert (info.value.item, info.value.field) == ("文件", "toml")
    assert "TOML" in str(info.value)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(lambda d: d.pop("version"), "version", id="missing version"),
        pytest.param(lambda d: d.__setitem__("source", " "), "source", id="blank source"),
        pytest.param(lambda d: d.__setitem__("items", []), "items", id="no items"),
        pytest.param(lambda d: d.__setitem__("itemz", []), "itemz", id="unknown top-level key"),
    ],
)
def test_file_level_problems_are_refused_naming_the_file_and_field(
    mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    data = _data(_item())
    mutate(data)
    error = _refusal(data)
    assert (error.item, error.field) == ("文件", field)


def test_a_valid_text_file_builds_typed_values() -> None:
    text = """
version = "t"
source = "测试"

[[items]]
code = "MZ-101"
name = "临时救助申请"
category = "社会救助"
department = "乡镇民政办"
decided_by = "township"
typical_kind = "joint"
departments = ["乡镇民政办", "乡镇财政所"]
door_to_door = false
fee = "不收费"
legal_basis = "《社会救助暂行办法》"

[items.limits.village]
statutory = "2wd"
promised = "1wd"
statutory_source = "local"

[items.limits.township]
statutory = "20wd"
promised = "5wd"
statutory_source = "statute"
note = "行政许可法第四十二条"

[[items.main_materials]]
id = "id_card"
name = "居民身份证"
"""
    item = parse_catalog(text).item("MZ-101")
    assert item.decided_by is Tier.TOWNSHIP and item.typical_kind is MatterKind.JOINT
    assert item.hop(Tier.TOWNSHIP) == HopLimits(
        Limit.working_days(20), Limit.working_days(5), StatutorySource.STATUTE, "行政许可法第四十二条"
    )
    assert item.departments == ("乡镇民政办", "乡镇财政所")
    assert item.auxiliary_materials == ()
    with pytest.raises(CatalogError):
        item.hop(Tier.COUNTY)


@settings(max_examples=60, deadline=None)
@given(
    promised=st.integers(min_value=1, max_value=90),
    statutory=st.integers(min_value=1, max_value=90),
    unit=st.sampled_from(["m", "wd", "nd"]),
)
def test_a_catalogue_builds_exactly_when_every_promised_limit_fits_the_statutory_one(
    promised: int, statutory: int, unit: str
) -> None:
    data = _data(_item())
    data["items"][0]["limits"]["county"] = _hop(f"{statutory}{unit}", f"{promised}{unit}")
    if promised <= statutory:
        assert build_catalog(data).items[0].hop(Tier.COUNTY).promised.amount == promised
    else:
        assert _refusal(data).field == "limits.county.promised"


def test_validation_does_not_modify_the_input_mapping() -> None:
    data = _data(_item())
    before = copy.deepcopy(data)
    build_catalog(data)
    assert data == before


# ------------------------------------------------------------------------------ materials assessment


def test_all_materials_present_is_accepted_as_the_items_typical_kind() -> None:
    item = _test_item()
    a = assess_materials(item, [m.id for m in item.materials])
    assert a.outcome is IntakeOutcome.ACCEPT
    assert a.missing_main == () and a.missing_auxiliary == ()
    assert a.suggested_kind is MatterKind.REPORTED
    assert a.return_reason_zh is None
    assert "尚缺材料：无" in a.notice_zh()


def test_a_missing_tolerated_auxiliary_material_is_accepted_with_tolerance_and_the_clock_runs() -> None:
    item = _test_item()
    a = assess_materials(item, ["id_card", "application_form", "income_proof", "agent_id_card"])
    assert a.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE
    assert a.missing_auxiliary == (item.material("bank_account"),)
    assert a.tolerated == (item.material("bank_account"),) and a.to_supplement == ()
    assert not a.clock_waits_for_materials
    assert a.suggested_kind is MatterKind.REPORTED
    assert "容缺承诺书" in a.notice_zh()


def test_a_missing_untolerated_auxiliary_material_makes_a_supplement_case_whose_clock_waits() -> None:
    item = _test_item()
    a = assess_materials(item, ["id_card", "application_form", "bank_account", "agent_id_card"])
    assert a.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE
    assert a.to_supplement == (item.material("income_proof"),)
    assert a.clock_waits_for_materials
    assert a.suggested_kind is MatterKind.SUPPLEMENT
    assert "自材料" in a.notice_zh() and "补齐之日起计算" in a.notice_zh()


def test_a_missing_main_material_returns_the_application_with_a_chinese_reason_listing_it() -> None:
    item = _test_item()
    a = assess_materials(item, ["id_card"])
    assert a.outcome is IntakeOutcome.RETURN
    assert a.suggested_kind is MatterKind.RETURNED
    assert a.missing_main == (item.material("application_form"),)
    assert a.return_reason_zh is not None and "申请书" in a.return_reason_zh
    # The auxiliary gaps are reported in the same notice, so the applicant comes back only once.
    assert {m.id for m in a.missing_auxiliary} == {"bank_account", "income_proof", "agent_id_card"}


def test_a_conditional_material_marked_not_applicable_is_not_missing() -> None:
    item = _test_item()
    a = assess_materials(
        item, ["id_card", "application_form", "bank_account", "income_proof"], not_applicable=["agent_id_card"]
    )
    assert a.outcome is IntakeOutcome.ACCEPT
    assert a.not_applicable == (item.material("agent_id_card"),)
    assert "仅委托他人申请的需要" in a.notice_zh()


def test_an_unconditional_material_cannot_be_marked_not_applicable() -> None:
    with pytest.raises(MaterialsInputError) as info:
        assess_materials(_test_item(), ["id_card"], not_applicable=["application_form"])
    assert info.value.field == "not_applicable" and "application_form" in str(info.value)


def test_a_material_both_brought_and_not_applicable_is_refused() -> None:
    with pytest.raises(MaterialsInputError):
        assess_materials(_test_item(), ["id_card", "agent_id_card"], not_applicable=["agent_id_card"])


def test_unknown_material_ids_are_refused_naming_them() -> None:
    item = _test_item()
    with pytest.raises(UnknownMaterialError) as info:
        assess_materials(item, ["id_card", "passport", "selfie"])
    assert isinstance(info.value, ValueError) and isinstance(info.value, CatalogError)
    assert info.value.unknown_ids == ("passport", "selfie")
    assert "passport" in str(info.value) and "selfie" in str(info.value)
    assert (info.value.item, info.value.field) == ("MZ-101", "materials")


def test_a_single_string_is_not_taken_for_a_list_of_material_ids() -> None:
    with pytest.raises(TypeError):
        assess_materials(_test_item(), "id_card")


def test_bringing_a_material_twice_counts_once() -> None:
    item = _test_item()
    a = assess_materials(item, ["id_card", "id_card", "application_form"])
    assert a.brought == (item.material("id_card"), item.material("application_form"))


def test_the_notice_tells_procedure_limits_fee_and_legal_basis_once() -> None:
    item = SHIPPED.item("MZ-001")
    notice = assess_materials(item, []).notice_zh()
    for m in item.materials:
        assert m.name in notice
    assert "县民政局" in notice and "乡镇便民服务中心" in notice and "村（社区）便民服务室" in notice
    for tier in item.tiers:
        assert item.hop(tier).promised.describe_zh() in notice
    assert item.fee in notice and item.legal_basis in notice
    assert "不计算在承诺办结时限内" in notice  # 003 限时办结制度 第八条
    assert "上门服务" in notice


def test_the_notice_of_a_joint_matter_names_the_lead_and_participating_departments() -> None:
    item = SHIPPED.item("NY-001")
    notice = assess_materials(item, [m.id for m in item.main_materials], not_applicable=["old_homestead_proof"]).notice_zh()
    assert f"{item.departments[0]}牵头" in notice
    for dept in item.departments:
        assert dept in notice


def _subsets_of_an_item() -> st.SearchStrategy[tuple[CatalogItem, frozenset[str]]]:
    return st.sampled_from(SHIPPED.items).flatmap(
        lambda item: st.tuples(st.just(item), st.frozensets(st.sampled_from([m.id for m in item.materials])))
    )


@settings(max_examples=300, deadline=None)
@given(case=_subsets_of_an_item())
def test_any_subset_of_materials_is_returned_iff_a_main_material_is_missing(
    case: tuple[CatalogItem, frozenset[str]],
) -> None:
    item, brought = case
    a = assess_materials(item, brought)
    main_missing = any(m.id not in brought for m in item.main_materials)
    assert (a.outcome is IntakeOutcome.RETURN) == main_missing
    assert (a.outcome is IntakeOutcome.ACCEPT) == (set(brought) == {m.id for m in item.materials})
    # Brought and missing partition the item's materials.
    assert {m.id for m in a.brought} | {m.id for m in a.missing} == {m.id for m in item.materials}
    assert not {m.id for m in a.brought} & {m.id for m in a.missing}
    assert all(isinstance(m, Material) for m in a.missing)


@settings(max_examples=200, deadline=None)
@given(case=_subsets_of_an_item())
def test_the_notice_mentions_every_missing_material(case: tuple[CatalogItem, frozenset[str]]) -> None:
    item, brought = case
    a = assess_materials(item, brought)
    notice = a.notice_zh()
    missing_section = notice.split("本事项所需全部材料")[0]
    for m in a.missing:
        assert m.name in missing_section, (item.code, m.id)
    if a.outcome is IntakeOutcome.RETURN:
        assert a.return_reason_zh and a.return_reason_zh in notice
        for m in a.missing_main:
            assert m.name in a.return_reason_zh


def test_catalog_values_are_immutable() -> None:
    item = SHIPPED.item("MZ-001")
    with pytest.raises(AttributeError):
        item.name = "改名"
    with pytest.raises(TypeError):
        item.limits[Tier.VILLAGE] = item.limits[Tier.TOWNSHIP]
    assert isinstance(SHIPPED, Catalog)
