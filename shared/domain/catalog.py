"""The service catalogue 服务事项目录: what each matter needs, who decides it, and how long each tier may take.

The catalogue is the single source for one-time notification 一次性告知 (materials, procedure, time
limit, fee and legal basis must be told once, in writing) and for the per-hop limits the deadline
clocks run on. It ships as `shared/data/catalog.toml`; the county can push a new version
(`CatalogUpdate` on the wire carries the TOML bytes), so every tier validates it the same way here.
Pure: `parse_catalog` takes the TOML text; reading the file is the adapter `shared.catalog`.

Validation is strict on purpose: a wrong catalogue silently corrupts every deadline and every
notice built from it, and the villages run offline on whatever version they last received. Every
refusal is a `CatalogError` naming the item (its code, or "第N项" when the code itself is missing)
and the field, so the county's data officer can fix the file without reading Python.

`assess_materials` classifies what a villager brought against an item's list (accept, accept with
tolerated-missing materials 容缺/补办, or return 退回) and writes the one-time notification text.
"""
from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from shared.domain.limits import Limit
from shared.errors import CatalogError

__all__ = [
    "Catalog",
    "CatalogItem",
    "HopLimits",
    "IntakeOutcome",
    "MaterialsAssessment",
    "MaterialsInputError",
    "Material",
    "MatterKind",
    "NotCountedPeriod",
    "StatutorySource",
    "Tier",
    "UnknownItemError",
    "UnknownMaterialError",
    "assess_materials",
    "build_catalog",
    "parse_catalog",
]

# The item name used in errors that concern the whole file rather than one matter.
FILE_ITEM = "文件"


# ---------------------------------------------------------------------------------------------- enums


class Tier(str, enum.Enum):
    """The three tiers a matter can pass through, lowest first (mirrors `quancheng.v1.Tier`)."""

    VILLAGE = "village"
    TOWNSHIP = "township"
    COUNTY = "county"

    @property
    def rank(self) -> int:
        return _TIER_ORDER.index(self)

    @property
    def label_zh(self) -> str:
        return {
            Tier.VILLAGE: "村（社区）便民服务室",
            Tier.TOWNSHIP: "乡镇便民服务中心",
            Tier.COUNTY: "县政务服务中心",
        }[self]


_TIER_ORDER: tuple[Tier, ...] = (Tier.VILLAGE, Tier.TOWNSHIP, Tier.COUNTY)


class MatterKind(str, enum.Enum):
    """The six kinds 六件管理 (mirrors `quancheng.v1.MatterKind`).

    A catalogue item names only its *typical* kind (immediate, promised, reported or joint):
    supplement and returned depend on what the applicant brought, so they come out of
    `assess_materials`, never out of the file.
    """

    IMMEDIATE = "immediate"
    PROMISED = "promised"
    SUPPLEMENT = "supplement"
    RETURNED = "returned"
    JOINT = "joint"
    REPORTED = "reported"

    @property
    def label_zh(self) -> str:
        return {
            MatterKind.IMMEDIATE: "即办件",
            MatterKind.PROMISED: "承诺件",
            MatterKind.SUPPLEMENT: "补办件",
            MatterKind.RETURNED: "退回件",
            MatterKind.JOINT: "联办件",
            MatterKind.REPORTED: "上报件",
        }[self]


_TYPICAL_KINDS = frozenset({MatterKind.IMMEDIATE, MatterKind.PROMISED, MatterKind.REPORTED, MatterKind.JOINT})


class StatutorySource(str, enum.Enum):
    """Where a hop's statutory figure comes from. Kept per hop so nobody mistakes a county's own
    working figure for a figure the law fixes (and so the county knows which ones to confirm)."""

    STATUTE = "statute"  # fixed by the regulation cited in the item's legal basis
    LOCAL = "local"  # the county's own figure (local rules or practice), to be confirmed

    @property
    def label_zh(self) -> str:
        return {StatutorySource.STATUTE: "法定时限", StatutorySource.LOCAL: "本县规定时限"}[self]


class IntakeOutcome(str, enum.Enum):
    """Result of checking the materials at intake (mirrors `quancheng.v1.IntakeOutcome`)."""

    ACCEPT = "accept"
    ACCEPT_WITH_TOLERANCE = "accept_with_tolerance"  # 容缺受理 / 补办件
    RETURN = "return"  # 退回件: a main material is missing

    @property
    def label_zh(self) -> str:
        return {
            IntakeOutcome.ACCEPT: "材料齐全，予以受理",
            IntakeOutcome.ACCEPT_WITH_TOLERANCE: "主要材料齐全，部分辅助材料暂缺，先行受理（容缺/补办）",
            IntakeOutcome.RETURN: "缺少主要材料，不予受理，予以退回",
        }[self]


# --------------------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class Material:
    """One document an applicant brings. `id` is a stable slug: it travels in `RequestFiled`, so
    renaming it would break matters already on the wire."""

    id: str
    name: str
    # Only auxiliary materials may be tolerated-missing 容缺: the applicant signs a commitment and
    # the matter proceeds. A missing auxiliary material without this flag makes a 补办件 whose
    # clock waits until it is supplied.
    tolerated_missing: bool = False
    # Non-empty for a material needed only in some cases (e.g. "委托他人申请的"): the operator may
    # mark it not applicable, and then it is not missing. Without this, every first-time applicant
    # would be short of a "原居民身份证" and wrongly land as a 补办件.
    condition: str = ""
    note: str = ""

    @property
    def is_conditional(self) -> bool:
        return bool(self.condition)


@dataclass(frozen=True)
class HopLimits:
    """The limits for one tier's leg 环节 of a matter."""

    statutory: Limit
    promised: Limit
    statutory_source: StatutorySource = StatutorySource.LOCAL
    note: str = ""


@dataclass(frozen=True)
class NotCountedPeriod:
    """A period an item's own legal basis takes out of the time limit (e.g. 公示 under a named rule)."""

    what: str
    basis: str


@dataclass(frozen=True)
class CatalogItem:
    code: str
    name: str
    category: str
    department: str
    decided_by: Tier
    typical_kind: MatterKind
    # Keyed by tier, always holding every tier from the village up to `decided_by`.
    limits: Mapping[Tier, HopLimits] = field(hash=False)
    main_materials: tuple[Material, ...]
    auxiliary_materials: tuple[Material, ...]
    door_to_door: bool
    fee: str
    legal_basis: str
    departments: tuple[str, ...] = ()
    note: str = ""
    # 重大、疑难事项: refusing one (不予受理 or 不予批准) needs the director's approval first (004 篇6).
    major: bool = False
    # Periods beyond the statutory list (003 第八条) that this item declares not counted, each with
    # its legal basis; shown to the operator, never assumed without one.
    not_counted: tuple[NotCountedPeriod, ...] = ()
    # 送达: from the result to the villager's sign-off; None takes the catalogue's default.
    delivery_limit: Limit | None = None

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The tiers the matter passes through, lowest first."""
        return tuple(t for t in _TIER_ORDER if t in self.limits)

    def hop(self, tier: Tier) -> HopLimits:
        try:
            return self.limits[tier]
        except KeyError:
            raise CatalogError(self.code, f"limits.{tier.value}", f"本事项不经过{tier.label_zh}，没有该环节时限") from None

    @property
    def deciding_hop(self) -> HopLimits:
        return self.limits[self.decided_by]

    @property
    def materials(self) -> tuple[Material, ...]:
        return self.main_materials + self.auxiliary_materials

    def material(self, material_id: str) -> Material:
        for m in self.materials:
            if m.id == material_id:
                return m
        raise UnknownMaterialError(self, (material_id,))

    def is_main(self, material_id: str) -> bool:
        return any(m.id == material_id for m in self.main_materials)


# 送达 when the file names none: the agent hands the result over within 3 working days.
DEFAULT_DELIVERY_LIMIT = Limit.working_days(3)


@dataclass(frozen=True)
class Catalog:
    version: str
    source: str
    items: tuple[CatalogItem, ...]
    delivery_limit: Limit = DEFAULT_DELIVERY_LIMIT
    # Lookups happen on every intake; the index is derived from `items`, so it stays out of
    # the constructor, eq and repr.
    _by_code: Mapping[str, CatalogItem] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_code", MappingProxyType({i.code: i for i in self.items}))

    def item(self, code: str) -> CatalogItem:
        """The item with this code; `UnknownItemError` (a `CatalogError` and `LookupError`) if none."""
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownItemError(code, self.version) from None

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._by_code

    def __iter__(self) -> Iterator[CatalogItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(i.code for i in self.items)

    def delivery_limit_for(self, item: CatalogItem) -> Limit:
        """The 送达 limit of an item: its own, or the catalogue's."""
        return item.delivery_limit or self.delivery_limit


class UnknownItemError(CatalogError, LookupError):
    """A matter code that the catalogue (this version) does not hold."""

    def __init__(self, code: str, version: str) -> None:
        super().__init__(code, "code", f"服务事项目录（版本 {version}）中没有编码为 {code!r} 的事项")
        self.code = code


class MaterialsInputError(CatalogError, ValueError):
    """The materials reported at intake do not make sense for the item."""


class UnknownMaterialError(MaterialsInputError):
    """Material ids that the item does not list; raised rather than ignored, because a silently
    dropped id would turn a complete application into a wrongly returned one."""

    def __init__(self, item: CatalogItem, unknown_ids: Sequence[str]) -> None:
        known = "、".join(m.id for m in item.materials)
        unknown = "、".join(repr(i) for i in unknown_ids)
        super().__init__(
            item.code,
            "materials",
            f"事项“{item.name}”没有以下材料编号：{unknown}；本事项的材料编号为：{known}",
        )
        self.unknown_ids = tuple(unknown_ids)


# ------------------------------------------------------------------------------------------- parsing


def parse_catalog(text: str) -> Catalog:
    """Parse and validate catalogue TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(FILE_ITEM, "toml", f"TOML 语法错误：{exc}") from exc
    return build_catalog(data)


def build_catalog(data: Mapping[str, Any]) -> Catalog:
    """Validate an already-decoded catalogue (the shape of the TOML file) and build it."""
    _check_keys(FILE_ITEM, "", data, required=_FILE_REQUIRED, optional=_FILE_OPTIONAL)
    version = _text(FILE_ITEM, "version", data)
    source = _text(FILE_ITEM, "source", data)
    raw_items = data["items"]
    if not isinstance(raw_items, list) or not raw_items:
        raise CatalogError(FILE_ITEM, "items", "必须是非空的事项列表（[[items]]）")

    items: list[CatalogItem] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_items):
        item = _build_item(index, raw)
        if item.code in seen:
            raise CatalogError(item.code, "code", f"事项编码重复（第{seen[item.code] + 1}项与第{index + 1}项）")
        seen[item.code] = index
        items.append(item)
    delivery = (_limit(FILE_ITEM, "delivery_limit", data["delivery_limit"]) if "delivery_limit" in data
                else DEFAULT_DELIVERY_LIMIT)
    return Catalog(version=version, source=source, items=tuple(items), delivery_limit=delivery)


# ------------------------------------------------------------------------------------- item validation

_FILE_REQUIRED = frozenset({"version", "source", "items"})
_FILE_OPTIONAL = frozenset({"description", "delivery_limit"})
_ITEM_REQUIRED = frozenset(
    {
        "code",
        "name",
        "category",
        "department",
        "decided_by",
        "typical_kind",
        "limits",
        "main_materials",
        "door_to_door",
        "fee",
        "legal_basis",
    }
)
_ITEM_OPTIONAL = frozenset({"auxiliary_materials", "departments", "note", "major", "not_counted", "delivery_limit"})
_NOT_COUNTED_REQUIRED = frozenset({"what", "basis"})
# The kinds an item's typical kind may be, by deciding tier: what that tier takes it as
# (`shared.domain.authority.allowed_kinds`; the county takes its matters as 上报件 from below).
_TYPICAL_BY_DECIDER = {
    Tier.VILLAGE: frozenset({MatterKind.IMMEDIATE, MatterKind.PROMISED}),
    Tier.TOWNSHIP: frozenset({MatterKind.IMMEDIATE, MatterKind.PROMISED, MatterKind.JOINT}),
    Tier.COUNTY: frozenset({MatterKind.REPORTED}),
}
_HOP_REQUIRED = frozenset({"statutory", "promised", "statutory_source"})
_HOP_OPTIONAL = frozenset({"note"})
_MATERIAL_REQUIRED = frozenset({"id", "name"})
_MATERIAL_OPTIONAL = frozenset({"tolerated_missing", "condition", "note"})

# Codes are quoted on receipts and in the ledger; a fixed shape keeps them stable and greppable.
_CODE_RE = re.compile(r"^[A-Z]{2,4}-\d{3}$")
_MATERIAL_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def _build_item(index: int, raw: Any) -> CatalogItem:
    if not isinstance(raw, Mapping):
        raise CatalogError(f"第{index + 1}项", "items", "每个事项必须是一个表（[[items]]）")
    # Until the code is known and well formed, errors name the position in the file.
    name_for_errors = f"第{index + 1}项"
    if "code" not in raw:
        raise CatalogError(name_for_errors, "code", "缺少必填字段")
    code = _text(name_for_errors, "code", raw)
    if not _CODE_RE.match(code):
        raise CatalogError(name_for_errors, "code", f"事项编码 {code!r} 格式应为“大写字母-三位数字”，如 MZ-001")

    _check_keys(code, "", raw, required=_ITEM_REQUIRED, optional=_ITEM_OPTIONAL)
    name = _text(code, "name", raw)
    category = _text(code, "category", raw)
    department = _text(code, "department", raw)
    decided_by = _enum(code, "decided_by", raw, Tier)
    typical_kind = _enum(code, "typical_kind", raw, MatterKind)
    if typical_kind not in _TYPICAL_KINDS:
        allowed = "、".join(k.value for k in MatterKind if k in _TYPICAL_KINDS)
        raise CatalogError(
            code,
            "typical_kind",
            f"{typical_kind.value}（{typical_kind.label_zh}）取决于申请人所交材料，不能作为事项的典型办件类型；应为：{allowed}",
        )

    if typical_kind not in _TYPICAL_BY_DECIDER[decided_by]:
        allowed = "、".join(f"{k.value}（{k.label_zh}）" for k in MatterKind if k in _TYPICAL_BY_DECIDER[decided_by])
        raise CatalogError(
            code,
            "typical_kind",
            f"本事项由{decided_by.label_zh}决定，典型办件类型不能是{typical_kind.label_zh}；应为：{allowed}",
        )

    limits = _build_limits(code, raw["limits"], decided_by)

    main = _build_materials(code, "main_materials", raw["main_materials"], allow_empty=False)
    auxiliary = _build_materials(code, "auxiliary_materials", raw.get("auxiliary_materials", []), allow_empty=True)
    for i, m in enumerate(main):
        if m.tolerated_missing:
            raise CatalogError(code, f"main_materials[{i}].tolerated_missing", "主要材料不能容缺，缺少主件应退回")
    _check_unique_material_ids(code, main, auxiliary)

    door_to_door = raw["door_to_door"]
    if not isinstance(door_to_door, bool):
        raise CatalogError(code, "door_to_door", f"必须是 true 或 false，实际为 {door_to_door!r}")
    fee = _text(code, "fee", raw)
    legal_basis = _text(code, "legal_basis", raw)

    departments = _text_list(code, "departments", raw.get("departments", []))
    if typical_kind is MatterKind.JOINT and len(departments) < 2:
        # The source rules set the bar at 3+ windows (乡镇便民中心工作制度) or 2+ authorities (政务服务中心管理制度;
        # docs/ARCHITECTURE.md, Where the rules come from); 2 is the floor both accept.
        raise CatalogError(code, "departments", "联办件必须列出至少两个参与联办的部门（第一个为牵头部门）")

    note = raw.get("note", "")
    if not isinstance(note, str):
        raise CatalogError(code, "note", "必须是文本")
    major = raw.get("major", False)
    if not isinstance(major, bool):
        raise CatalogError(code, "major", f"必须是 true 或 false，实际为 {major!r}")
    not_counted = _build_not_counted(code, raw.get("not_counted", []))
    delivery = _limit(code, "delivery_limit", raw["delivery_limit"]) if "delivery_limit" in raw else None

    return CatalogItem(
        code=code,
        name=name,
        category=category,
        department=department,
        decided_by=decided_by,
        typical_kind=typical_kind,
        limits=limits,
        main_materials=main,
        auxiliary_materials=auxiliary,
        door_to_door=door_to_door,
        fee=fee,
        legal_basis=legal_basis,
        departments=departments,
        note=note.strip(),
        major=major,
        not_counted=not_counted,
        delivery_limit=delivery,
    )


def _build_not_counted(code: str, raw: Any) -> tuple[NotCountedPeriod, ...]:
    if not isinstance(raw, list):
        raise CatalogError(code, "not_counted", "必须是列表（[[items.not_counted]]，每项含 what 与 basis）")
    out: list[NotCountedPeriod] = []
    for i, entry in enumerate(raw):
        path = f"not_counted[{i}]"
        if not isinstance(entry, Mapping):
            raise CatalogError(code, path, "每项必须是含 what、basis 的表")
        _check_keys(code, path + ".", entry, required=_NOT_COUNTED_REQUIRED, optional=frozenset())
        what = _text(code, f"{path}.what", entry, key="what")
        basis = _text(code, f"{path}.basis", entry, key="basis")
        # 现场勘查 happens inside the limit (004 五制; 000): no basis makes it a pause.
        if "勘" in what:
            raise CatalogError(code, f"{path}.what", "现场勘查（踏勘）在承诺时限内进行，不能列为不计时情形")
        out.append(NotCountedPeriod(what=what, basis=basis))
    return tuple(out)


def _build_limits(code: str, raw: Any, decided_by: Tier) -> Mapping[Tier, HopLimits]:
    if not isinstance(raw, Mapping) or not raw:
        raise CatalogError(code, "limits", "必须是按层级分的时限表（[items.limits.village] 等）")
    hops: dict[Tier, HopLimits] = {}
    for key in raw:
        try:
            tier = Tier(key)
        except ValueError:
            raise CatalogError(code, f"limits.{key}", f"未知层级 {key!r}，应为 village、township 或 county") from None
        if tier.rank > decided_by.rank:
            raise CatalogError(
                code, f"limits.{key}", f"本事项由{decided_by.label_zh}决定，不应再有更高层级（{tier.label_zh}）的时限"
            )
    # Every tier from the village up to the deciding one: the full-agency chain starts in the
    # village room and a missing hop would leave a leg with no clock at all.
    for tier in _TIER_ORDER[: decided_by.rank + 1]:
        if tier.value not in raw:
            raise CatalogError(code, f"limits.{tier.value}", f"缺少{tier.label_zh}环节的时限（事项由{decided_by.label_zh}决定）")
        hops[tier] = _build_hop(code, f"limits.{tier.value}", raw[tier.value])
    return MappingProxyType(hops)


def _build_hop(code: str, path: str, raw: Any) -> HopLimits:
    if not isinstance(raw, Mapping):
        raise CatalogError(code, path, "必须是含 statutory、promised、statutory_source 的表")
    _check_keys(code, path + ".", raw, required=_HOP_REQUIRED, optional=_HOP_OPTIONAL)
    statutory = _limit(code, f"{path}.statutory", raw["statutory"])
    promised = _limit(code, f"{path}.promised", raw["promised"])
    if not promised.fits_within(statutory):
        raise CatalogError(
            code,
            f"{path}.promised",
            f"承诺时限 {promised.describe_zh()} 超过法定时限 {statutory.describe_zh()}；承诺时限必须在法定时限之内",
        )
    source_raw = raw["statutory_source"]
    try:
        source = StatutorySource(source_raw)
    except ValueError:
        raise CatalogError(
            code, f"{path}.statutory_source", f"应为 statute（法定）或 local（本县规定），实际为 {source_raw!r}"
        ) from None
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise CatalogError(code, f"{path}.note", "必须是文本")
    return HopLimits(statutory=statutory, promised=promised, statutory_source=source, note=note.strip())


def _build_materials(code: str, field_name: str, raw: Any, *, allow_empty: bool) -> tuple[Material, ...]:
    if not isinstance(raw, list):
        raise CatalogError(code, field_name, f"必须是材料列表（[[items.{field_name}]]）")
    if not raw and not allow_empty:
        raise CatalogError(code, field_name, "至少需要一项主要材料")
    out: list[Material] = []
    for i, entry in enumerate(raw):
        path = f"{field_name}[{i}]"
        if not isinstance(entry, Mapping):
            raise CatalogError(code, path, "每项材料必须是含 id、name 的表")
        _check_keys(code, path + ".", entry, required=_MATERIAL_REQUIRED, optional=_MATERIAL_OPTIONAL)
        material_id = _text(code, f"{path}.id", entry, key="id")
        if not _MATERIAL_ID_RE.match(material_id):
            raise CatalogError(code, f"{path}.id", f"材料编号 {material_id!r} 只能由小写字母、数字和下划线组成，且以字母开头")
        name = _text(code, f"{path}.name", entry, key="name")
        tolerated = entry.get("tolerated_missing", False)
        if not isinstance(tolerated, bool):
            raise CatalogError(code, f"{path}.tolerated_missing", f"必须是 true 或 false，实际为 {tolerated!r}")
        condition = entry.get("condition", "")
        if not isinstance(condition, str):
            raise CatalogError(code, f"{path}.condition", "必须是文本（适用情形）")
        note = entry.get("note", "")
        if not isinstance(note, str):
            raise CatalogError(code, f"{path}.note", "必须是文本")
        out.append(
            Material(
                id=material_id,
                name=name,
                tolerated_missing=tolerated,
                condition=condition.strip(),
                note=note.strip(),
            )
        )
    return tuple(out)


def _check_unique_material_ids(code: str, main: Sequence[Material], auxiliary: Sequence[Material]) -> None:
    seen: dict[str, str] = {}
    for field_name, materials in (("main_materials", main), ("auxiliary_materials", auxiliary)):
        for i, m in enumerate(materials):
            path = f"{field_name}[{i}].id"
            if m.id in seen:
                raise CatalogError(code, path, f"材料编号 {m.id!r} 在本事项中重复（已见于 {seen[m.id]}）")
            seen[m.id] = path


# ---------------------------------------------------------------------------------- field primitives


def _check_keys(item: str, prefix: str, raw: Mapping[str, Any], *, required: frozenset[str], optional: frozenset[str]) -> None:
    for key in sorted(required):
        if key not in raw:
            raise CatalogError(item, prefix + key, "缺少必填字段")
    # Unknown keys are refused: a misspelt 'promissed' would otherwise vanish and the hop would
    # silently run on a default.
    for key in raw:
        if key not in required and key not in optional:
            raise CatalogError(item, prefix + key, "未知字段（可能拼写错误）")


def _text(item: str, path: str, raw: Mapping[str, Any], *, key: str | None = None) -> str:
    value = raw.get(key or path)
    if not isinstance(value, str):
        raise CatalogError(item, path, f"必须是文本，实际为 {value!r}")
    if not value.strip():
        raise CatalogError(item, path, "不能为空")
    return value.strip()


def _text_list(item: str, path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise CatalogError(item, path, "必须是非空文本的列表")
    stripped = tuple(v.strip() for v in value)
    if len(set(stripped)) != len(stripped):
        raise CatalogError(item, path, "部门重复")
    return stripped


_E = TypeVar("_E", bound=enum.Enum)


def _enum(item: str, path: str, raw: Mapping[str, Any], enum_type: type[_E]) -> _E:
    value = raw[path]
    try:
        return enum_type(value)
    except ValueError:
        allowed = "、".join(e.value for e in enum_type)
        raise CatalogError(item, path, f"未知取值 {value!r}，应为：{allowed}") from None


def _limit(item: str, path: str, value: Any) -> Limit:
    if not isinstance(value, str):
        raise CatalogError(item, path, f"时限必须写成文本，如 '30m'、'5wd'、'60nd'，实际为 {value!r}")
    try:
        return Limit.parse(value)
    except ValueError as exc:
        raise CatalogError(item, path, str(exc)) from exc


# ------------------------------------------------------------------------------ materials assessment

# The list of steps whose time is not counted (限时办结制度 第八条; docs/ARCHITECTURE.md, Where the rules come
# from); the notice must say so.
_NOT_COUNTED_ZH = "依法需要听证、招标、拍卖、检验、检测、检疫、鉴定和专家评审的，所需时间不计算在承诺办结时限内。"


@dataclass(frozen=True)
class MaterialsAssessment:
    """What a villager brought, measured against one catalogue item."""

    item: CatalogItem
    outcome: IntakeOutcome
    brought: tuple[Material, ...]
    missing_main: tuple[Material, ...]
    missing_auxiliary: tuple[Material, ...]
    not_applicable: tuple[Material, ...] = ()

    @property
    def missing(self) -> tuple[Material, ...]:
        return self.missing_main + self.missing_auxiliary

    @property
    def tolerated(self) -> tuple[Material, ...]:
        """Missing auxiliary materials the applicant may supply later on a signed commitment 容缺承诺."""
        return tuple(m for m in self.missing_auxiliary if m.tolerated_missing)

    @property
    def to_supplement(self) -> tuple[Material, ...]:
        """Missing auxiliary materials that make a 补办件: the clock waits until they are supplied."""
        return tuple(m for m in self.missing_auxiliary if not m.tolerated_missing)

    @property
    def clock_waits_for_materials(self) -> bool:
        """True for a 补办件: its time limit counts from the day the materials are complete (004)."""
        return self.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE and bool(self.to_supplement)

    @property
    def suggested_kind(self) -> MatterKind:
        """The six-kind classification this intake suggests; the operator may still decide otherwise
        (e.g. return a complete application that policy does not allow)."""
        if self.outcome is IntakeOutcome.RETURN:
            return MatterKind.RETURNED
        if self.to_supplement:
            return MatterKind.SUPPLEMENT
        return self.item.typical_kind

    @property
    def return_reason_zh(self) -> str | None:
        """The written reason for a 退回件, or None when the application is accepted."""
        if self.outcome is not IntakeOutcome.RETURN:
            return None
        return f"缺少主要材料：{_names(self.missing_main)}。申报材料缺少主件的，按退回件处理。"

    def notice_zh(self) -> str:
        """The complete one-time notification 一次性告知书: every missing material, the procedure
        tier by tier with its promised limit, fee and legal basis, told once and in writing."""
        item = self.item
        lines: list[str] = [
            "一次性告知书",
            f"事项：{item.name}（编码 {item.code}）",
            f"主管部门：{item.department}",
            f"受理结果：{self.outcome.label_zh}（{self.suggested_kind.label_zh}）",
        ]
        if self.outcome is IntakeOutcome.RETURN:
            lines.append(f"退回原因：{self.return_reason_zh}")

        # Everything missing goes in one list, main and auxiliary alike: telling the applicant
        # about one more document on the next trip is exactly what 一次性告知 forbids.
        if self.missing:
            lines.append("尚缺材料（以下为全部所缺材料，请一次补齐）：")
            for n, m in enumerate(self.missing, start=1):
                lines.append(f"  {n}. {m.name}（{_missing_status_zh(m, main=m in self.missing_main)}）")
        else:
            lines.append("尚缺材料：无。")
        if self.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE and self.tolerated:
            lines.append(f"可容缺材料（{_names(self.tolerated)}）请签署容缺承诺书，并在约定期限内补交。")
        if self.clock_waits_for_materials:
            lines.append(f"本件为补办件，办理时限自材料（{_names(self.to_supplement)}）补齐之日起计算。")
        if self.outcome is IntakeOutcome.RETURN:
            lines.append("补齐主要材料后可重新申请，代办员可协助准备。")

        lines.append("本事项所需全部材料：")
        for m in item.main_materials:
            lines.append(f"  · {m.name}（主要材料{_condition_zh(m)}）")
        for m in item.auxiliary_materials:
            tolerance = "，可容缺" if m.tolerated_missing else ""
            lines.append(f"  · {m.name}（辅助材料{tolerance}{_condition_zh(m)}）")

        lines.append(f"办理程序及承诺时限（{item.typical_kind.label_zh}，由{_place_zh(item, item.decided_by)}决定）：")
        for step, tier in enumerate(item.tiers, start=1):
            hop = item.limits[tier]
            lines.append(
                f"  {step}. {_place_zh(item, tier)}{_role_zh(item, tier)}：承诺 {hop.promised.describe_zh()}"
                f"（{hop.statutory_source.label_zh} {hop.statutory.describe_zh()}）"
            )
        if item.typical_kind is MatterKind.JOINT and item.departments:
            lines.append(f"联办部门：{'、'.join(item.departments)}（{item.departments[0]}牵头）。")
        lines.append(_NOT_COUNTED_ZH)
        if item.note:
            lines.append(f"说明：{item.note}")
        if item.door_to_door:
            lines.append("老弱病残等行动不便的申请人，可预约代办员上门服务。")
        lines.append(f"收费标准：{item.fee}")
        lines.append(f"办理依据：{item.legal_basis}")
        return "\n".join(lines)


def assess_materials(
    item: CatalogItem,
    brought_ids: Iterable[str],
    *,
    not_applicable: Iterable[str] = (),
) -> MaterialsAssessment:
    """Classify what was brought against the item's list.

    Every main material present decides acceptance (RETURN otherwise); missing auxiliary ones are
    accepted on tolerance 容缺 or as a 补办件, and listed. `not_applicable` names conditional
    materials (those with a `condition`) whose case does not apply to this applicant.
    """
    brought_set = _id_set("brought_ids", brought_ids)
    na_set = _id_set("not_applicable", not_applicable)
    known = {m.id for m in item.materials}
    unknown = sorted((brought_set | na_set) - known)
    if unknown:
        raise UnknownMaterialError(item, unknown)
    unconditional = sorted(i for i in na_set if not item.material(i).is_conditional)
    if unconditional:
        raise MaterialsInputError(
            item.code, "not_applicable", f"以下材料不是按情形提交的材料，不能标为不适用：{'、'.join(unconditional)}"
        )
    both = sorted(brought_set & na_set)
    if both:
        # Contradictory input means the intake screen is confused; guessing would hide it.
        raise MaterialsInputError(item.code, "not_applicable", f"以下材料既标为已提交又标为不适用：{'、'.join(both)}")

    required = [m for m in item.materials if m.id not in na_set]
    missing_main = tuple(m for m in item.main_materials if m in required and m.id not in brought_set)
    missing_aux = tuple(m for m in item.auxiliary_materials if m in required and m.id not in brought_set)
    if missing_main:
        outcome = IntakeOutcome.RETURN
    elif missing_aux:
        outcome = IntakeOutcome.ACCEPT_WITH_TOLERANCE
    else:
        outcome = IntakeOutcome.ACCEPT
    return MaterialsAssessment(
        item=item,
        outcome=outcome,
        brought=tuple(m for m in item.materials if m.id in brought_set),
        missing_main=missing_main,
        missing_auxiliary=missing_aux,
        not_applicable=tuple(m for m in item.materials if m.id in na_set),
    )


def _id_set(name: str, ids: Iterable[str]) -> set[str]:
    if isinstance(ids, (str, bytes)):
        # A bare string would iterate as characters and report nonsense ids.
        raise TypeError(f"{name} must be an iterable of material ids, not a single string")
    out = set(ids)
    bad = [i for i in out if not isinstance(i, str)]
    if bad:
        raise TypeError(f"{name} must hold material ids as str, got {bad!r}")
    return out


def _names(materials: Iterable[Material]) -> str:
    return "、".join(m.name for m in materials)


def _missing_status_zh(m: Material, *, main: bool) -> str:
    if main:
        return "主要材料，必须提交"
    if m.tolerated_missing:
        return "辅助材料，可容缺后补"
    return "辅助材料，须补齐"


def _condition_zh(m: Material) -> str:
    return f"；仅{m.condition}需要" if m.condition else ""


def _place_zh(item: CatalogItem, tier: Tier) -> str:
    # At the county the deciding department is what the villager recognises, not the hall's name.
    if tier is Tier.COUNTY:
        return item.department
    return tier.label_zh


def _role_zh(item: CatalogItem, tier: Tier) -> str:
    if tier is item.decided_by:
        return "受理并办结" if tier is Tier.VILLAGE else "审核、决定并办结"
    if tier is Tier.VILLAGE:
        return "代办员受理、初审并报送乡镇"
    return "受理、审核并上报县级部门（全程代办）"
