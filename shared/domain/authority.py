"""Who may decide what: the catalogue fixes the deciding tier (`decided_by`), and a tier may take a
matter only as the kinds its authority allows (docs/ARCHITECTURE.md, "Authority").

* The deciding tier (township or village) may take it as any of the six kinds except 上报件.
* A tier below the deciding one may only return it (退回) or escalate it (上报): never 即办/承诺/联办,
  never 补办 (which would let it run the matter to a result of its own), never record 准予.
* The county receives county matters only as 上报件 from below, and decides them itself.
* A tier above the deciding one (the township for a village's own matter) classifies nothing: it
  tracks the village's matter.

Pure: plain functions over a `CatalogItem`.
"""
from __future__ import annotations

from shared.domain.catalog import CatalogItem, MatterKind, Tier

__all__ = [
    "allowed_kinds",
    "may_decide",
    "tracks_only",
    "typical_kind_allowed",
    "authority_refusal_zh",
]

_PASS_ON = frozenset({MatterKind.RETURNED, MatterKind.REPORTED})
_OWN = frozenset({MatterKind.IMMEDIATE, MatterKind.PROMISED, MatterKind.SUPPLEMENT, MatterKind.RETURNED,
                  MatterKind.JOINT})


def allowed_kinds(item: CatalogItem, tier: Tier) -> frozenset[MatterKind]:
    """The kinds `tier` may take a matter of `item` as (empty when it only tracks the matter)."""
    decider = item.decided_by
    if tier.rank > decider.rank:
        return frozenset()
    if tier.rank < decider.rank:
        # The village room collects 收件 for the township; it classifies nothing it does not decide.
        return _PASS_ON if tier is not Tier.VILLAGE else frozenset()
    if tier is Tier.COUNTY:
        return frozenset({MatterKind.REPORTED})
    return _OWN


def may_decide(item: CatalogItem, tier: Tier) -> bool:
    """Only the deciding tier records 准予 or 不予批准 on a matter."""
    return item.decided_by is tier


def tracks_only(item: CatalogItem, tier: Tier) -> bool:
    """A lower tier decides the matter: this tier follows it (the village's own matter at the township)."""
    return tier.rank > item.decided_by.rank


def typical_kind_allowed(item: CatalogItem) -> bool:
    """The catalogue's typical kind must be one its deciding tier may take the matter as."""
    return item.typical_kind in allowed_kinds(item, item.decided_by)


def authority_refusal_zh(item: CatalogItem, tier: Tier, kind: MatterKind) -> str:
    """Why `tier` may not take `item` as `kind`, in the words the operator reads."""
    if tracks_only(item, tier):
        return (f"“{item.name}”由{item.decided_by.label_zh}办理，{tier.label_zh}只跟踪进度，不作分类")
    if tier.rank < item.decided_by.rank:
        return (f"“{item.name}”由{item.decided_by.label_zh}审批，{tier.label_zh}无权按{kind.label_zh}办理，"
                f"只能退回或上报")
    allowed = "、".join(k.label_zh for k in MatterKind if k in allowed_kinds(item, tier))
    return f"“{item.name}”在{tier.label_zh}只能按以下类型办理：{allowed}"
