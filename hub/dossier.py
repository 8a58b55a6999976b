"""What the county decides on: the village's signed filing as it arrived inside the township's 上报.

The escalation keeps the village's own envelopes byte for byte (checked against the village key when
the county took it in, and kept in `ingest_log`), so the dossier is read from them rather than from a
copy that could drift: the authorization 委托书 (method, the signature image or photo, the witness),
the materials brought, tolerated or missing — by name from the catalogue, never by id —, the agent's
note and the elderly/disabled flag. Pure apart from opening what was sealed to the county key.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from shared.clock import from_unix_ms
from shared.domain.catalog import CatalogItem
from shared.errors import CatalogError, SharedError
from shared.sealing import open_sealed
from shared.signing import Signer
from shared.wire.v1 import records_pb2

__all__ = ["AuthorizationView", "MaterialLine", "Dossier", "read_dossier", "filing_of", "image_type", "material_names"]

log = logging.getLogger(__name__)

# By enum name, so a method added to the wire later (as 按手印 was) is named here or shown as "other",
# never as a number or an English key.
_METHOD_ZH = {
    "AUTHORIZATION_METHOD_DRAWN_SIGNATURE": "申请人在代办员电脑上现场手写签名",
    "AUTHORIZATION_METHOD_PHOTO_OF_FORM": "申请人签字的纸质委托书照片",
    "AUTHORIZATION_METHOD_WITNESS": "申请人无法签字，由见证人证明",
    "AUTHORIZATION_METHOD_FINGERPRINT": "申请人在纸质委托书上按手印（照片）",
}
_INTAKE_ZH = {
    records_pb2.INTAKE_OUTCOME_ACCEPT: "材料齐全，村代办员收件",
    records_pb2.INTAKE_OUTCOME_ACCEPT_WITH_TOLERANCE: "主要材料齐全，部分辅助材料容缺（申请人已承诺补交）",
    records_pb2.INTAKE_OUTCOME_RETURN: "缺少主要材料（村级已退回）",
}


def image_type(data: bytes) -> str:
    """The MIME type of a PNG or JPEG (the only images the laptop accepts), else ""."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return ""


@dataclass(frozen=True)
class AuthorizationView:
    """The villager's authorization as the decision maker reads it."""

    method_zh: str
    captured_at: dt.datetime | None     # the laptop's clock: a claim, shown as such
    image: bytes = field(default=b"", repr=False)   # the signature or the photo, opened with the county key
    image_type: str = ""
    witness_name: str = ""
    witness_statement: str = ""
    # Why the evidence itself is not shown (sealed to the township, or it does not match its digest).
    unavailable_zh: str = ""

    @property
    def has_image(self) -> bool:
        return bool(self.image and self.image_type)


@dataclass(frozen=True)
class MaterialLine:
    name: str
    status_zh: str      # 已带 / 容缺，承诺 … 前补交 / 未带
    main: bool


@dataclass(frozen=True)
class Dossier:
    authorization: AuthorizationView | None
    materials: tuple[MaterialLine, ...]
    intake_zh: str
    note: str
    elderly_or_disabled: bool
    door_to_door: bool

    @property
    def missing(self) -> tuple[MaterialLine, ...]:
        return tuple(m for m in self.materials if m.status_zh.startswith("未带"))


def filing_of(escalation: records_pb2.Escalation) -> records_pb2.RequestFiled | None:
    """The village's RequestFiled among the escalation's envelopes (verified when it was taken in)."""
    for env in escalation.village_envelopes:
        try:
            record = records_pb2.Record.FromString(env.payload)
        except Exception:  # noqa: BLE001 - a payload that does not decode was refused at intake; skip it here
            continue
        if record.HasField("request_filed") and record.request_filed.matter_id == escalation.matter_id:
            return record.request_filed
    return None


def read_dossier(escalation: records_pb2.Escalation, item: CatalogItem | None, signer: Signer) -> Dossier | None:
    filed = filing_of(escalation)
    if filed is None:
        return None
    return Dossier(
        authorization=_authorization(filed, signer, _resealed_evidence(escalation, signer))
        if filed.HasField("authorization") else None,
        materials=_materials(filed, item),
        intake_zh=_INTAKE_ZH.get(filed.intake_outcome, "村级未注明收件结论"),
        note=filed.note.strip(),
        elderly_or_disabled=bool(filed.applicant.elderly_or_disabled),
        door_to_door=bool(filed.door_to_door),
    )


def _resealed_evidence(escalation: records_pb2.Escalation, signer: Signer) -> bytes | None:
    """The authorization evidence the township resealed to this county's key, opened; None without it."""
    if not escalation.sealed_authorization_for_county or escalation.sealed_to_key_id != signer.key_id:
        return None
    try:
        return open_sealed(signer.seed(), bytes(escalation.sealed_authorization_for_county))
    except SharedError:
        return None


def _authorization(filed: records_pb2.RequestFiled, signer: Signer, resealed: bytes | None = None) -> AuthorizationView:
    auth = filed.authorization
    try:
        name = records_pb2.AuthorizationMethod.Name(auth.method)
    except ValueError:
        name = ""
    method_zh = _METHOD_ZH.get(name, "其他方式（本版本无法识别）")
    captured = from_unix_ms(int(auth.captured_at_ms)) if auth.captured_at_ms else None
    base = AuthorizationView(method_zh, captured)
    if not auth.sealed_evidence:
        return _with(base, unavailable_zh="村级记录未附委托凭证。")
    if resealed is not None:
        # Resealed by the township: shown only when it is exactly what the villager's record signed.
        if not auth.evidence_sha256 or hashlib.sha256(resealed).digest() != bytes(auth.evidence_sha256):
            log.warning("resealed authorization evidence of %s does not match its digest", filed.matter_id)
            return _with(base, unavailable_zh="乡镇转交的委托凭证与村级签名记录中的摘要不符，不予显示，请联系上报乡镇核实。")
        return _shown(base, name, resealed)
    if auth.sealed_to_key_id != signer.key_id:
        # The laptop seals the evidence to its township; the county sees it only if it was sealed (or
        # resealed) to the county key. Say so rather than show an empty box.
        return _with(base, unavailable_zh="委托凭证已加密交乡镇保存，未转交县级；如需核对原件，请联系上报乡镇。")
    try:
        evidence = open_sealed(signer.seed(), bytes(auth.sealed_evidence))
    except SharedError:
        return _with(base, unavailable_zh="委托凭证无法用本县密钥打开。")
    if auth.evidence_sha256 and hashlib.sha256(evidence).digest() != bytes(auth.evidence_sha256):
        log.warning("authorization evidence of %s does not match its digest", filed.matter_id)
        return _with(base, unavailable_zh="委托凭证与村级签名记录中的摘要不符，不予显示，请联系上报乡镇核实。")
    return _shown(base, name, evidence)


def _shown(base: AuthorizationView, name: str, evidence: bytes) -> AuthorizationView:
    if name == "AUTHORIZATION_METHOD_WITNESS":
        try:
            doc = json.loads(evidence.decode("utf-8"))
            return _with(base, witness_name=str(doc.get("witness_name", "")).strip(),
                         witness_statement=str(doc.get("statement", "")).strip())
        except (UnicodeDecodeError, ValueError, AttributeError):
            return _with(base, unavailable_zh="见证记录无法读取。")
    kind = image_type(evidence)
    if not kind:
        return _with(base, unavailable_zh="委托凭证不是可显示的图片。")
    return _with(base, image=evidence, image_type=kind)


def _with(base: AuthorizationView, **changes: Any) -> AuthorizationView:
    from dataclasses import replace

    return replace(base, **changes)


def _materials(filed: records_pb2.RequestFiled, item: CatalogItem | None) -> tuple[MaterialLine, ...]:
    if item is None:
        # The catalogue no longer holds the item: names are unknown; say how many, never the ids.
        n = len(filed.materials_brought)
        return (MaterialLine(f"已带材料 {n} 项（服务事项目录中已无此事项，无法列出名称）", "已带", True),) if n else ()
    brought = set(filed.materials_brought)
    not_applicable = set(filed.materials_not_applicable)
    tolerated = {t.material_id: t.supply_by_date for t in filed.tolerated_missing}
    lines: list[MaterialLine] = []
    for main, materials in ((True, item.main_materials), (False, item.auxiliary_materials)):
        for m in materials:
            if m.id in brought:
                status = "已带"
            elif m.id in not_applicable:
                status = f"不适用（代办员核实：不属“{m.condition}”）" if m.condition else "不适用（代办员核实）"
            elif m.id in tolerated:
                status = f"容缺，申请人承诺 {tolerated[m.id]} 前补交" if tolerated[m.id] else "容缺，申请人承诺补交"
            elif m.condition:
                status = f"未带（仅“{m.condition}”需要）"
            else:
                status = "未带"
            lines.append(MaterialLine(m.name, status, main))
    known = {m.id for m in item.materials}
    extra = [x for x in brought if x not in known]
    if extra:
        lines.append(MaterialLine(f"其他材料 {len(extra)} 项（目录中已无对应名称）", "已带", False))
    return tuple(lines)


def material_names(item: CatalogItem | None, ids: list[str] | tuple[str, ...]) -> list[str]:
    """Material ids (or the free-text names the county asked for) as names."""
    out = []
    for x in ids:
        if item is not None:
            try:
                out.append(item.material(x).name)
                continue
            except CatalogError:
                pass
        # The county's own 补正 list is free text: the township passes those names back unchanged.
        out.append(x if not _looks_like_id(x) else "目录外材料")
    return out


def _looks_like_id(text: str) -> bool:
    return bool(text) and text.isascii()
