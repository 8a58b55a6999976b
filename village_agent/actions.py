"""Every agent action as `name -> function(service, params) -> result dict`.

The CLI sub-commands and `village-agent batch` (JSON lines, for scripting and tests) both go
through this table, so each action has one entry point and one set of checks (in `services`).
Results carry no personal data beyond what the agent typed in this call. A matter is named by the
lookup code printed on its receipt (`code`, or `matter_id`, which takes the code or the internal id
scripts hold); results keep machine keys for `--json` and add the Chinese a person reads.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from typing import Any

from shared.clock import from_unix_ms, to_unix_ms
from shared.domain.catalog import IntakeOutcome
from village_agent.errors import FieldProblem, FormError, UnknownMatterError
from village_agent.hop import hop_due, village_hop
from village_agent.notice import intake_notice_lines
from village_agent.receipt import build_receipt, format_due, receipt_text
from village_agent.services import SHANGHAI, AgentService, Confirmation, RequestForm

Action = Callable[[AgentService, dict[str, Any]], dict[str, Any]]

KIND_ZH = {
    "request_filed": "登记代办申请", "materials_added": "补充材料", "appointment_made": "预约",
    "appointment_forfeited": "预约失约", "visit_recorded": "上门服务", "withdrawn": "撤回",
    "result_handed_over": "交付办理结果", "signed_off": "群众签收评价", "follow_up_called": "回访",
    "matter_classified": "乡镇受理分类", "status_update": "乡镇进度更新", "hop_clock_changed": "计时变更",
    "result_ready": "办理结果已出", "decision": "审批决定", "supervision_notice": "督办通知", "escalation": "上报县级",
    "document_issued": "签发文书",
}


def _list(value: Any, label: str = "材料") -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) for v in value):
        return [str(v).strip() for v in value if str(v).strip()]
    raise FormError([FieldProblem("materials", label, f"{label}应为编号列表，或用逗号分隔的编号")])


def _text(p: dict[str, Any], key: str, default: str = "") -> str:
    value = p.get(key, default)
    if value is None:
        return default
    if isinstance(value, (dict, list)):
        raise FormError([FieldProblem(key, key, "应为一段文字")])
    return str(value)


def _matter(service: AgentService, p: dict[str, Any]) -> str:
    reference = _text(p, "code") or _text(p, "matter_id")
    if not reference.strip():
        raise UnknownMatterError("请用 --code 给出事项的查询码（回执上的 10 位查询码，如 AB3CD-EF4GH）")
    return service.resolve_matter(reference)


def _image(p: dict[str, Any], b64_key: str, file_key: str, field: str, label: str) -> bytes:
    if p.get(b64_key):
        try:
            return base64.b64decode(str(p[b64_key]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FormError([FieldProblem(field, label, "图片数据无效（应为 base64 编码）")]) from exc
    path = p.get(file_key)
    if path:
        try:
            with open(str(path), "rb") as fh:
                return fh.read(5 * 1024 * 1024)
        except OSError as exc:
            raise FormError([FieldProblem(field, label, f"无法读取图片文件 {path}：{os_error_zh(exc)}")]) from exc
    return b""


def os_error_zh(exc: OSError) -> str:
    """Why a file could not be used, in Chinese (Python's own text is English)."""
    import errno

    return {
        errno.ENOENT: "文件或目录不存在", errno.EACCES: "没有访问权限", errno.EPERM: "没有访问权限",
        errno.EISDIR: "这是一个目录，不是文件", errno.ENOTDIR: "路径中有一项不是目录", errno.ENOSPC: "磁盘空间不足",
        errno.EEXIST: "文件已存在", errno.EROFS: "磁盘只读", errno.EADDRINUSE: "端口已被占用",
        errno.EADDRNOTAVAIL: "本机没有这个地址", errno.ENAMETOOLONG: "文件名太长",
    }.get(exc.errno or 0, "无法访问")


def _commitments(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k).strip(): str(v).strip() for k, v in value.items()}
    raise FormError([FieldProblem("commitments", "承诺补交日期", "应写成 材料编号=YYYY-MM-DD")])


def request(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    form = RequestForm(
        applicant_name=_text(p, "name"), id_number=_text(p, "id_number"), phone=_text(p, "phone"),
        address=_text(p, "address"), catalog_code=_text(p, "matter").strip().upper(),
        materials_brought=_list(p.get("materials")), commitments=_commitments(p.get("commitments")),
        not_applicable=_list(p.get("not_applicable")), authorization_method=_text(p, "authorization"),
        authorization_evidence=_image(p, "evidence_b64", "evidence_file", "authorization_evidence", "委托书"),
        witness_name=_text(p, "witness_name"), witness_statement=_text(p, "witness_statement"),
        elderly_or_disabled=bool(p.get("elderly_or_disabled")), door_to_door=bool(p.get("door_to_door")),
        visit_id=_text(p, "visit_id"), note=_text(p, "note"),
    )
    filed = service.file_request(form, matter_id=_text(p, "matter_id") or None)
    return {"matter_id": filed.matter_id, "lookup_code": filed.lookup_code, "seq": filed.seq,
            "outcome": filed.assessment.outcome.value, "outcome_zh": filed.assessment.outcome.label_zh,
            "missing": [m.name for m in filed.assessment.missing],
            "text": _filed_text(service, filed.lookup_code, filed.matter_id)}


def _filed_text(service: AgentService, code: str, matter_id: str) -> str:
    view = build_receipt(service, matter_id)
    outcome = next((line for line in view.notice_lines if line.startswith("收件意见：")), "")
    missing = next((line for line in view.notice_lines if line.startswith("尚缺材料")), "")
    return "\n".join(x for x in (f"已登记（{view.title}）。查询码：{code}", outcome, missing,
                                 f"打印回执：village-agent receipt --code {code}") if x)


def assess(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    a = service.assess(_text(p, "matter").strip().upper(), _list(p.get("materials")), _list(p.get("not_applicable")))
    due = hop_due(a.item, service.clock.now(), service.calendar) if a.outcome is not IntakeOutcome.RETURN else None
    notice = "\n".join(intake_notice_lines(a, {}, township_name=service.config.township_name, village_due=due))
    return {"outcome": a.outcome.value, "outcome_zh": a.outcome.label_zh,
            "missing_main": [m.name for m in a.missing_main], "missing_auxiliary": [m.name for m in a.missing_auxiliary],
            "notice": notice, "text": notice}


def materials(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    matter_id = _matter(service, p)
    ids = _list(p.get("materials"))
    signed = service.add_materials(matter_id, ids, _text(p, "note"))
    item = service.catalog.item(service.store.matter_state(matter_id).catalog_code)
    names = [m.name for m in item.materials if m.id in ids]
    return {"seq": signed.seq, "text": f"已登记补充材料：{'、'.join(names)}。"}


def _parse_local_time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise FormError([FieldProblem("scheduled_at", "预约时间", "时间格式应为 2026-12-01T09:30")]) from exc
    return value if value.tzinfo else value.replace(tzinfo=SHANGHAI)


PLACE_ZH = {"service_room": "村便民服务室", "applicant_home": "申请人家中", "township_center": "乡镇便民服务中心"}


def appointment(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    matter_id = _matter(service, p) if (_text(p, "code") or _text(p, "matter_id")) else ""
    at = _parse_local_time(_text(p, "at"))
    appointment_id, signed = service.make_appointment(
        scheduled_at=at, place=_text(p, "place"), purpose=_text(p, "purpose"), matter_id=matter_id,
        place_detail=_text(p, "place_detail"))
    short = appointment_id[:8].upper()
    return {"appointment_id": appointment_id, "seq": signed.seq, "appointment_no": short,
            "text": f"已登记预约：{at.astimezone(SHANGHAI):%Y-%m-%d %H:%M}，{PLACE_ZH.get(_text(p, 'place'), '')}。"
                    f"预约号 {short}（登记上门服务时用：village-agent visit --appointment {short}）"}


def _appointment_id(service: AgentService, reference: str) -> str:
    """An appointment by its short 预约号 (the start of its id) or its full id."""
    text = reference.strip().lower()
    if not text:
        return ""
    if len(text) < 6:
        raise UnknownMatterError("预约号至少 6 位，请照登记预约时显示的预约号填写")
    found = service.store.appointment_ids_starting(text)
    if len(found) != 1:
        raise UnknownMatterError("本机没有这个预约号的预约" if not found else "预约号对应多个预约，请多写几位")
    return found[0]


def visit(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    matter_id = _matter(service, p) if (_text(p, "code") or _text(p, "matter_id")) else ""
    visit_id, signed = service.record_visit(appointment_id=_appointment_id(service, _text(p, "appointment_id")),
                                            matter_id=matter_id, place=_text(p, "place", "applicant_home") or "applicant_home",
                                            outcome=_text(p, "outcome"), late_reason=_text(p, "late_reason"))
    return {"visit_id": visit_id, "seq": signed.seq, "text": "已登记上门服务。"}


def forfeit(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    """预约服务制度 第七条: one appointment, with the failed contact attempt it rests on."""
    appointment_id = _appointment_id(service, _text(p, "appointment_id"))
    if not appointment_id:
        raise FormError([FieldProblem("appointment_id", "预约号", "请填写要标记失约的预约号")])
    contact_at = None
    if _text(p, "contact_at"):
        try:
            contact_at = _parse_local_time(_text(p, "contact_at"))
        except FormError:
            raise FormError([FieldProblem("contact_at", "联系时间", "时间格式应为 2026-12-01T10:15")]) from None
    signed = service.forfeit_appointment(appointment_id, contact_at=contact_at, method=_text(p, "method"),
                                         outcome=_text(p, "outcome"))
    return {"forfeited": [appointment_id], "seq": signed.seq,
            "text": "已登记联系情况，预约已标记为失约，请与群众另约时间。"}


def withdraw(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    return {"seq": service.withdraw(_matter(service, p), _text(p, "reason")).seq, "text": "事项已撤回。"}


def handover(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    matter_id = _matter(service, p)
    signed = service.hand_over(matter_id, _text(p, "result"), _list(p.get("materials_returned")))
    code = service.store.lookup_code_of(matter_id)
    return {"seq": signed.seq, "text": f"已交付办理结果，请群众签收评价（village-agent signoff --code {code} …）。"}


def signoff(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    method = _text(p, "method")
    evidence = b""
    if method in ("photo_of_form", "fingerprint"):
        evidence = _image(p, "evidence_b64", "evidence_file", "signature", "签收确认")
    signature = _image(p, "signature_b64", "signature_file", "signature", "签收签名")
    if signature and not method:
        method = "drawn_signature"
    if method == "drawn_signature":
        evidence = signature
    signed = service.sign_off(_matter(service, p), _text(p, "rating"), _text(p, "comment"), confirmation=Confirmation(
        method, evidence, _text(p, "witness_name"), _text(p, "witness_statement")))
    return {"seq": signed.seq, "text": "群众已签收并评价，本次代办服务结束。"}


def followup(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    signed = service.follow_up(_matter(service, p), reached=bool(p.get("reached", True)),
                               outcome=_text(p, "outcome"), rating=_text(p, "rating"))
    return {"seq": signed.seq, "text": "已登记回访。"}


def _hop_zh(service: AgentService, state: Any, received: dict[int, int]) -> str:
    if state.catalog_code not in service.catalog:
        return "—"
    hop = village_hop(service.catalog.item(state.catalog_code), state, received_ms=received.get(state.filed_seq),
                      now_ms=to_unix_ms(service.clock.now()), calendar=service.calendar)
    if hop is None:
        return "—"
    due = f"，{hop.due_zh} 前" if hop.due_zh != "—" and not hop.stopped_zh else ""
    stopped = f"，{hop.stopped_zh}" if hop.stopped_zh else ""
    return f"{hop.title_zh}：{hop.state_zh}{due}{stopped}"


def list_matters(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    from village_agent.domain import MatterStatus

    status = _text(p, "status").strip()
    if status and status not in {s.value for s in MatterStatus}:
        by_zh = {s.label_zh: s.value for s in MatterStatus}
        if status not in by_zh:
            raise FormError([FieldProblem("status", "状态", "可选：" + "、".join(f"{s.value}（{s.label_zh}）" for s in MatterStatus))])
        status = by_zh[status]
    try:
        limit = max(1, min(int(p.get("limit", 50)), 10_000))
    except (TypeError, ValueError):
        raise FormError([FieldProblem("limit", "条数", "应为正整数")]) from None
    states = service.store.list_matters(limit=limit, status=status or None)
    received = service.store.receipt_times([s.filed_seq for s in states])
    rows = [{"matter_id": s.matter_id, "lookup_code": service.store.lookup_code_of(s.matter_id), "catalog_code": s.catalog_code,
             "title": service.matter_title(s), "status": s.status.value, "status_zh": s.status.label_zh,
             "id_masked": s.id_masked, "filed": f"{from_unix_ms(s.filed_claimed_ms).astimezone(SHANGHAI):%Y-%m-%d %H:%M}",
             "due": format_due(s.due_at_ms), "village_hop": _hop_zh(service, s, received)} for s in states]
    lines = [f"{r['lookup_code'] or '（无查询码）':12s} {r['filed']}  {r['title']}  {r['status_zh']}  "
             f"身份证 {r['id_masked']}  {r['village_hop']}  办结时限：{r['due']}" for r in rows]
    lines.append(f"共 {len(rows)} 件")
    return {"matters": rows, "text": "\n".join(lines)}


def show(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    matter_id = _matter(service, p)
    state = service.store.matter_state(matter_id)
    records = service.store.ledger_records_for(matter_id)
    history = [r.WhichOneof("body") for r in records]
    item = service.catalog.item(state.catalog_code) if state.catalog_code in service.catalog else None
    names = {m.id: m.name for m in item.materials} if item else {}
    code = service.store.lookup_code_of(matter_id)
    received = service.store.receipt_times([state.filed_seq])
    lines = [f"查询码：{code or '（本机无此件查询码）'}", f"事项：{service.matter_title(state)}", f"状态：{state.status.label_zh}",
             f"身份证：{state.id_masked}", _hop_zh(service, state, received), f"办结时限：{format_due(state.due_at_ms)}"]
    if state.message:
        lines.append(f"说明：{state.message}")
    lines.append("已交材料：" + ("、".join(names.get(m, "（目录中已无此材料）") for m in state.materials) or "无"))
    if state.not_applicable:
        lines.append("不适用：" + "、".join(names.get(m, "（目录中已无此材料）") for m in state.not_applicable))
    lines.append("办理记录：")
    for r in records:
        kind = r.WhichOneof("body") or ""
        at = f"{from_unix_ms(r.header.claimed_time_ms).astimezone(SHANGHAI):%Y-%m-%d %H:%M}" if r.header.claimed_time_ms else ""
        lines.append(f"  {at}  {KIND_ZH.get(kind, '其他记录')}")
    return {"matter_id": matter_id, "lookup_code": code, "status": state.status.value, "status_zh": state.status.label_zh,
            "catalog_code": state.catalog_code, "materials": list(state.materials), "due": format_due(state.due_at_ms),
            "message": state.message, "history": history, "text": "\n".join(lines)}


def receipt(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    return {"text": receipt_text(build_receipt(service, _matter(service, p)))}


def status(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    from shared.keys import fingerprint
    from village_agent.sync import sync_view

    tip = service.store.tip()
    result = {"key_id": service.signer.key_id, "last_seq": tip.seq, "waiting_to_send": service.store.outbox_size(),
              "matters": service.store.count_matters(), "last_sync_at": sync_view(service, None).last_sync_at,
              "township": service.config.township_address, "recovering": service.store.recovering()}
    result["text"] = (f"设备指纹：{fingerprint(service.signer.public_key)}\n"
                      f"乡镇中心：{service.config.township_name}便民服务中心（{service.config.township_address}）\n"
                      f"本机事项：{result['matters']} 件\n签名台账：共 {tip.seq} 条记录\n待上报：{result['waiting_to_send']} 条\n"
                      f"最近同步：{result['last_sync_at'] or '尚未同步'}"
                      + ("\n注意：本机由备份恢复，须先联网与乡镇同步，找回备份之后的记录，才能继续登记" if result["recovering"] else ""))
    return result


def sync(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    """One pass: push everything queued, then pull what the township has for this device."""
    from village_agent.sync import describe, relay_client

    client = relay_client(service)
    try:
        result = client.sync_once()
    finally:
        client.stop()
    message = describe(result)
    return {"confirmed": result.confirmed, "pulled": result.pulled, "recovered": result.recovered,
            "recovering": service.store.recovering(), "waiting_to_send": service.store.outbox_size(),
            "drained": result.drained, "message": message, "text": f"{message}；待上报 {service.store.outbox_size()} 条"}


def export(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    """Write the whole signed ledger to a file (audit, or carried on a USB stick); verifiable with `ledger-verify`."""
    from pathlib import Path

    from shared.ledger_file import MAGIC, LedgerAppender

    out = Path(_text(p, "out"))
    if not _text(p, "out").strip():
        raise FormError([FieldProblem("out", "导出文件", "请用 --out 指定导出文件路径")])
    if out.exists():
        raise FormError([FieldProblem("out", "导出文件", "文件已存在，不会覆盖")])
    if not out.parent.is_dir():
        raise FormError([FieldProblem("out", "导出文件", f"目录 {out.parent} 不存在")])
    rows = service.store.ledger_rows()
    with LedgerAppender(out) as appender:
        written = appender.append(r.envelope for r in rows)
    assert out.read_bytes().startswith(MAGIC)
    return {"exported": written, "file": str(out),
            "text": f"已导出签名台账 {written} 条记录到 {out}，可用 village-agent ledger-verify {out} 校验。"}


def rebuild(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    replayed = service.store.rebuild_projections()
    return {"replayed": replayed, "text": f"已从签名台账重建事项状态：重放 {replayed} 条记录。"}


ACTIONS: dict[str, Action] = {
    "request": request, "assess": assess, "materials": materials, "appointment": appointment, "visit": visit,
    "forfeit": forfeit, "withdraw": withdraw, "handover": handover, "signoff": signoff, "followup": followup,
    "list": list_matters, "show": show, "receipt": receipt, "status": status, "rebuild": rebuild, "export": export, "sync": sync,
}

__all__ = ["ACTIONS", "Action", "KIND_ZH", "os_error_zh"]
