"""Every agent action as `name -> function(service, params) -> result dict`.

The CLI sub-commands and `village-agent batch` (JSON lines, for scripting and tests) both go
through this table, so each action has one entry point and one set of checks (in `services`).
Results carry no personal data beyond what the agent typed in this call.
"""
from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from typing import Any

from village_agent.errors import FieldProblem, FormError
from village_agent.receipt import build_receipt, format_due, receipt_text
from village_agent.services import SHANGHAI, AgentService, RequestForm

Action = Callable[[AgentService, dict[str, Any]], dict[str, Any]]


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _evidence(params: dict[str, Any]) -> bytes:
    if params.get("evidence_b64"):
        try:
            return base64.b64decode(params["evidence_b64"], validate=True)
        except ValueError as exc:
            raise FormError([FieldProblem("authorization_evidence", "委托书", "图片数据无效")]) from exc
    path = params.get("evidence_file")
    if path:
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise FormError([FieldProblem("authorization_evidence", "委托书", f"无法读取图片文件：{exc.strerror}")]) from exc
    return b""


def request(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    form = RequestForm(
        applicant_name=str(p.get("name", "")), id_number=str(p.get("id_number", "")), phone=str(p.get("phone", "")),
        address=str(p.get("address", "")), catalog_code=str(p.get("matter", "")),
        materials_brought=_list(p.get("materials")), commitments=dict(p.get("commitments") or {}),
        not_applicable=_list(p.get("not_applicable")), authorization_method=str(p.get("authorization", "")),
        authorization_evidence=_evidence(p), witness_name=str(p.get("witness_name", "")),
        witness_statement=str(p.get("witness_statement", "")), elderly_or_disabled=bool(p.get("elderly_or_disabled")),
        door_to_door=bool(p.get("door_to_door")), visit_id=str(p.get("visit_id", "")), note=str(p.get("note", "")),
    )
    filed = service.file_request(form, matter_id=p.get("matter_id") or None)
    return {"matter_id": filed.matter_id, "lookup_code": filed.lookup_code, "seq": filed.seq,
            "outcome": filed.assessment.outcome.value, "outcome_zh": filed.assessment.outcome.label_zh,
            "missing": [m.name for m in filed.assessment.missing]}


def assess(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    a = service.assess(str(p.get("matter", "")), _list(p.get("materials")), _list(p.get("not_applicable")))
    return {"outcome": a.outcome.value, "outcome_zh": a.outcome.label_zh,
            "missing_main": [m.name for m in a.missing_main], "missing_auxiliary": [m.name for m in a.missing_auxiliary],
            "notice": a.notice_zh()}


def materials(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    signed = service.add_materials(str(p.get("matter_id", "")), _list(p.get("materials")), str(p.get("note", "")))
    return {"seq": signed.seq}


def _parse_local_time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise FormError([FieldProblem("scheduled_at", "预约时间", "时间格式应为 2026-12-01T09:30")]) from exc
    return value if value.tzinfo else value.replace(tzinfo=SHANGHAI)


def appointment(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    appointment_id, signed = service.make_appointment(
        scheduled_at=_parse_local_time(str(p.get("at", ""))), place=str(p.get("place", "")),
        purpose=str(p.get("purpose", "")), matter_id=str(p.get("matter_id", "")), place_detail=str(p.get("place_detail", "")))
    return {"appointment_id": appointment_id, "seq": signed.seq}


def visit(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    visit_id, signed = service.record_visit(appointment_id=str(p.get("appointment_id", "")), matter_id=str(p.get("matter_id", "")),
                                            place=str(p.get("place", "applicant_home")), outcome=str(p.get("outcome", "")))
    return {"visit_id": visit_id, "seq": signed.seq}


def forfeit(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    return {"forfeited": service.forfeit_due_appointments()}


def withdraw(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    return {"seq": service.withdraw(str(p.get("matter_id", "")), str(p.get("reason", ""))).seq}


def handover(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    signed = service.hand_over(str(p.get("matter_id", "")), str(p.get("result", "")), _list(p.get("materials_returned")))
    return {"seq": signed.seq}


def signoff(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    signature = base64.b64decode(p["signature_b64"]) if p.get("signature_b64") else b""
    signed = service.sign_off(str(p.get("matter_id", "")), str(p.get("rating", "")), str(p.get("comment", "")), signature)
    return {"seq": signed.seq}


def followup(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    signed = service.follow_up(str(p.get("matter_id", "")), reached=bool(p.get("reached", True)),
                               outcome=str(p.get("outcome", "")), rating=str(p.get("rating", "")))
    return {"seq": signed.seq}


def list_matters(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    states = service.store.list_matters(limit=int(p.get("limit", 50)), status=p.get("status") or None)
    return {"matters": [{"matter_id": s.matter_id, "catalog_code": s.catalog_code, "status": s.status.value,
                         "status_zh": s.status.label_zh, "id_masked": s.id_masked, "due": format_due(s.due_at_ms)}
                        for s in states]}


def show(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    matter_id = str(p.get("matter_id", ""))
    state = service.store.matter_state(matter_id)
    history = [r.WhichOneof("body") for r in service.store.ledger_records_for(matter_id)]
    return {"matter_id": matter_id, "status": state.status.value, "status_zh": state.status.label_zh,
            "catalog_code": state.catalog_code, "materials": list(state.materials), "due": format_due(state.due_at_ms),
            "message": state.message, "history": history}


def receipt(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    return {"text": receipt_text(build_receipt(service, str(p.get("matter_id", ""))))}


def status(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    from village_agent.sync import sync_view

    tip = service.store.tip()
    return {"key_id": service.signer.key_id, "last_seq": tip.seq, "waiting_to_send": service.store.outbox_size(),
            "matters": service.store.count_matters(), "last_sync_at": sync_view(service, None).last_sync_at,
            "township": service.config.township_address, "recovering": service.store.recovering()}


def sync(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    """One pass: push everything queued, then pull what the township has for this device."""
    from village_agent.sync import describe, relay_client

    client = relay_client(service)
    try:
        result = client.sync_once()
    finally:
        client.stop()
    return {"confirmed": result.confirmed, "pulled": result.pulled, "recovered": result.recovered,
            "recovering": service.store.recovering(), "waiting_to_send": service.store.outbox_size(),
            "drained": result.drained, "message": describe(result)}


def export(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    """Write the whole signed ledger to a file (audit, or carried on a USB stick); verifiable with `ledger-verify`."""
    from pathlib import Path

    from shared.ledger_file import MAGIC, LedgerAppender

    out = Path(str(p.get("out", "")))
    if not str(p.get("out", "")).strip():
        raise FormError([FieldProblem("out", "导出文件", "请指定导出文件路径")])
    if out.exists():
        raise FormError([FieldProblem("out", "导出文件", "文件已存在，不会覆盖")])
    rows = service.store.ledger_rows()
    with LedgerAppender(out) as appender:
        written = appender.append(r.envelope for r in rows)
    assert out.read_bytes().startswith(MAGIC)
    return {"exported": written, "file": str(out)}


def rebuild(service: AgentService, p: dict[str, Any]) -> dict[str, Any]:
    return {"replayed": service.store.rebuild_projections()}


ACTIONS: dict[str, Action] = {
    "request": request, "assess": assess, "materials": materials, "appointment": appointment, "visit": visit,
    "forfeit": forfeit, "withdraw": withdraw, "handover": handover, "signoff": signoff, "followup": followup,
    "list": list_matters, "show": show, "receipt": receipt, "status": status, "rebuild": rebuild, "export": export, "sync": sync,
}
