"""The service catalogue as the agent reads it on the command line (`village-agent catalog`).

Material ids appear here, and only here, beside their names: the command line needs them
(`--materials`, `--commit`, `--not-applicable`), and this is where the agent looks them up.
"""
from __future__ import annotations

from shared.domain.catalog import Catalog, CatalogItem, Material, Tier
from village_agent.hop import limit_text_zh


def _material_line(item: CatalogItem, m: Material) -> str:
    if item.is_main(m.id):
        notes = ["主要材料，缺少即退回"]
    elif m.tolerated_missing:
        notes = ["辅助材料，可容缺，签承诺书后补交"]
    else:
        notes = ["辅助材料，缺少时为补办件"]
    if m.condition:
        notes.append(f"仅{m.condition}需要，不属此情形时用 --not-applicable 标为不适用")
    return f"    {m.id:<32s} {m.name}（{'；'.join(notes)}）"


def _heading(item: CatalogItem) -> str:
    decider = item.department if item.decided_by is Tier.COUNTY else item.decided_by.label_zh
    return f"{item.code}  {item.name}（{item.category}；由{decider}决定；{item.typical_kind.label_zh}）"


def catalog_list_text(catalog: Catalog) -> str:
    lines = [f"服务事项目录（版本 {catalog.version}，共 {len(catalog)} 项）。材料编号用于 --materials、--commit、--not-applicable。", ""]
    for item in catalog:
        lines.append(_heading(item))
        lines.extend(_material_line(item, m) for m in item.materials)
        lines.append("")
    lines.append("查看一个事项的时限、收费和依据：village-agent catalog 事项编码")
    return "\n".join(lines)


def catalog_item_text(item: CatalogItem) -> str:
    lines = [_heading(item), f"主管部门：{item.department}", "材料（编号  名称）："]
    lines.extend(_material_line(item, m) for m in item.materials)
    lines.append("各环节时限：")
    for tier in item.tiers:
        hop = item.limits[tier]
        role = "报送乡镇" if tier is Tier.VILLAGE and item.decided_by is not Tier.VILLAGE else "办理"
        lines.append(f"    {tier.label_zh}（{role}）：{limit_text_zh(hop)}" + (f"；{hop.note}" if hop.note else ""))
    if item.departments:
        lines.append(f"联办部门：{'、'.join(item.departments)}")
    if item.note:
        lines.append(f"说明：{item.note}")
    lines.append(f"上门服务：{'可以' if item.door_to_door else '不提供'}")
    lines.append(f"收费标准：{item.fee}")
    lines.append(f"办理依据：{item.legal_basis}")
    main = ",".join(m.id for m in item.main_materials)
    lines.append("")
    lines.append(f"登记示例：village-agent request --matter {item.code} --materials {main} … "
                 "（缺少的辅助材料用 --commit 材料编号=YYYY-MM-DD 写承诺补交日期）")
    return "\n".join(lines)
