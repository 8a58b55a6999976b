"""好差评, 考核 and 督查 through the JSON API: the 差评 list and its 整改/复核 actions, the 回访 list and
its findings, the assessment report for a period as JSON, and the supervisor's daily overdue list with
its cause/solution and contact records. Each route calls the same `Evaluations`, `Assessment` or
`Oversight` method as the console page (`town_center.console.evaluation_pages`), under the same role
rule. Who rated (the evaluator's name, number, masked ID) and the applicant to call back are in an answer
only for the director and the supervision role (`CONFIDENTIAL_ROLES`), as on the pages."""
from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from shared.api import ApiCaller, Forbidden, NotFound, require
from shared.domain.evaluation import FollowUpFindings, Level
from shared.domain.handling import Role
from town_center.assessment import COLUMNS, DIMENSIONS, Assessment, parse_period
from town_center.evaluation import CONFIDENTIAL_ROLES, Evaluations, EvaluationView
from town_center.store.evaluation_tables import evaluation, follow_up_finding
from town_center.store.matter_tables import follow_up_call, town_matter
from town_center.supervision import Cause, OverdueItem, Oversight

__all__ = ["add_evaluation_routes", "EVALUATION_TAGS"]

EVALUATION_TAGS = [
    {"name": "好差评", "description": "差评的整改、办结与复核，每周回访（评价人身份仅中心主任和督查可见）"},
    {"name": "考核", "description": "一个时期的考核统计（与网页“考核统计”和 .xlsx 相同）"},
    {"name": "督查", "description": "每日超期清单、超期原因与解决方案、联系申请人记录"},
]
EVALUATION_STAFF = (Role.OPERATOR, Role.DIRECTOR, Role.SUPERVISOR)
BEIJING = dt.timezone(dt.timedelta(hours=8))


class OwnFiguresOut(BaseModel):
    """本人的评价统计与整改任务（不含评价人信息）。"""

    by_level: dict[str, int] = Field(description="各评价等级的件数（键为等级 1–5：非常满意…非常不满意）")
    agent_entered: int = Field(description="代办员代为录入的件数")
    bad_reasons: dict[str, int] = Field(description="差评原因及件数")
    tasks: list[dict[str, Any]] = Field(description="本人的整改任务：被批评的事项与整改期限")


class AssignIn(BaseModel):
    owner: str = Field(max_length=64, description="整改责任人登录名")


class TextIn(BaseModel):
    text: str = Field(max_length=2000, description="整改情况")


class ReasonIn(BaseModel):
    reason: str = Field(max_length=1000, description="复核认定无效评价的理由")


class Done(BaseModel):
    message: str = Field(description="中文结果说明（与网页控制台的提示相同）")


class FollowUpOut(BaseModel):
    """回访清单的一件。"""

    matter_id: str
    week: str = Field(description="所属周（周一日期）")
    village_code: str
    title: str = Field(description="事项名称")
    bad: bool = Field(description="本件有差评")
    own: bool = Field(description="本人经办过（经办人不得回访本件）")
    applicant: str = Field(description="回访对象的姓名和电话：仅未回访、且非本人经办的件才给出")
    done: str = Field(description="回访结果（已回访时）")


class FollowUpIn(BaseModel):
    reached: bool = Field(description="是否接通")
    attitude_ok: bool = Field(default=True, description="服务态度无问题")
    efficiency_ok: bool = Field(default=True, description="办事效率无问题")
    by_the_rules_ok: bool = Field(default=True, description="按章办事无问题")
    integrity_ok: bool = Field(default=True, description="廉洁自律无问题")
    satisfaction: int | None = Field(default=None, ge=1, le=5, description="满意度 1–5（1 非常满意）")
    suggestion: str = Field(default="", max_length=1000, description="意见建议")


class AssessmentRowOut(BaseModel):
    key: str = Field(description="分组代码")
    label: str = Field(description="分组名称")
    cells: dict[str, int | str] = Field(description="各列的值，键为列名（与网页、.xlsx 的表头相同）")
    score: float | None = Field(description="考核得分")


class AssessmentOut(BaseModel):
    """一个时期的考核统计。"""

    title: str
    period: str = Field(description="时期代码，如 2026-Q4、2026-11")
    period_zh: str
    start: dt.date
    end: dt.date = Field(description="时期结束后的第一天")
    by: str
    by_zh: str
    columns: list[str]
    rows: list[AssessmentRowOut]
    weights: dict[str, int] = Field(description="得分权重")


class OverdueOut(BaseModel):
    """督查：超期清单的一件。"""

    matter_id: str
    title: str
    village_code: str
    owner: str = Field(description="承办人登录名")
    hop: str = Field(description="township 乡镇环节，county 县级环节")
    due_at: dt.datetime
    overdue_working_days: int
    cause: Cause | None
    cause_zh: str
    solution: str
    cause_by: str
    contacts: list[dict[str, Any]] = Field(description="联系申请人的记录")
    needs_cause: bool
    needs_contact: bool
    applicant: str = Field(description="须联系的申请人姓名和电话：仅中心主任和督查可见")


class CauseIn(BaseModel):
    cause: Cause = Field(description="超期原因")
    solution: str = Field(max_length=1000, description="解决方案")


class ContactIn(BaseModel):
    reached: bool = Field(description="是否联系上")
    outcome: str = Field(max_length=1000, description="联系情况")


def add_evaluation_routes(api: FastAPI, evaluations: Evaluations) -> None:
    staff = Depends(require(*EVALUATION_STAFF))
    confidential = Depends(require(Role.DIRECTOR, Role.SUPERVISOR))
    handling = evaluations.handling
    assessment = Assessment(evaluations)
    oversight = Oversight(handling)

    # ------------------------------------------------------------------ 好差评

    @api.get("/evaluations", tags=["好差评"], summary="评价列表（含评价人，仅中心主任和督查）",
             response_model=list[EvaluationView])
    def evaluation_list(period: str = Query("", description="时期：月（2026-11，默认本月）、季度（2026-Q4）、年或日期区间"),
                        bad_only: bool = Query(False, description="只列差评"), who: ApiCaller = confidential) -> list[Any]:
        p = parse_period(period, evaluations.clock.now().astimezone(BEIJING).date())
        return evaluations.views(role=who.role, since=p.start_at, until=p.end_at, bad_only=bad_only)

    @api.get("/evaluations/mine", tags=["好差评"], summary="本人的评价统计与整改任务", response_model=OwnFiguresOut)
    def own(who: ApiCaller = staff) -> OwnFiguresOut:
        f = evaluations.own_figures(who.staff_id)
        return OwnFiguresOut(by_level={str(int(k)): v for k, v in f.by_level.items()}, agent_entered=f.agent_entered,
                             bad_reasons={getattr(k, "label_zh", str(k)): v for k, v in f.bad_reasons.items()},
                             tasks=f.tasks)

    @api.get("/evaluations/follow-ups", tags=["好差评"], summary="回访清单", response_model=list[FollowUpOut])
    def follow_ups(who: ApiCaller = staff) -> list[FollowUpOut]:
        with handling.store.engine.connect() as conn:
            rows = conn.execute(select(follow_up_call, town_matter.c.catalog_code, town_matter.c.village_code)
                                .join(town_matter, town_matter.c.matter_id == follow_up_call.c.matter_id)
                                .order_by(follow_up_call.c.week_start.desc(), follow_up_call.c.matter_id)).all()
            bad = set(conn.execute(select(evaluation.c.matter_id).where(evaluation.c.level >= 4,
                                                                        evaluation.c.by_villager.is_(True))).scalars())
            found = {r.matter_id: r for r in conn.execute(select(follow_up_finding))}
        catalog = handling.catalog
        out = []
        for r in rows:
            own_matter = who.staff_id in evaluations.handled_by(r.matter_id)
            applicant = ""
            if not own_matter and r.called_at_ms is None:
                details = handling.applicant(r.matter_id)
                applicant = f"{details.name} {details.phone}" if details is not None else "（无法读取申请人信息）"
            done = ""
            if r.called_at_ms is not None:
                f = found.get(r.matter_id)
                done = "未接通" if f is not None and not f.reached else f"{'已接通' if r.reached else '未接通'} {r.outcome}"
            out.append(FollowUpOut(matter_id=r.matter_id, week=str(r.week_start), village_code=r.village_code,
                                   title=catalog.item(r.catalog_code).name if r.catalog_code in catalog else "服务事项",
                                   bad=r.matter_id in bad, own=own_matter, applicant=applicant, done=done))
        return out

    @api.post("/evaluations/follow-ups/draw", tags=["好差评"], summary="抽取本周回访办件（仅中心主任和督查）",
              response_model=Done)
    def draw(who: ApiCaller = confidential) -> Done:
        count, week = evaluations.draw_follow_ups()
        if not count:
            return Done(message=f"本周（{week} 起）没有新的回访办件，或已经抽取过")
        return Done(message=f"已抽取本周（{week} 起）回访办件 {count} 件")

    @api.post("/evaluations/follow-ups/{matter_id}", tags=["好差评"], summary="登记回访结果", response_model=Done,
              description="经办过本件的工作人员不得回访本件。")
    def follow_up(matter_id: str, body: FollowUpIn, who: ApiCaller = staff) -> Done:
        findings = FollowUpFindings(
            reached=body.reached, attitude_ok=body.attitude_ok, efficiency_ok=body.efficiency_ok,
            by_the_rules_ok=body.by_the_rules_ok, integrity_ok=body.integrity_ok,
            satisfaction=Level(body.satisfaction) if body.satisfaction is not None else None,
            suggestion=body.suggestion.strip())
        evaluations.record_follow_up(matter_id, findings, actor=who.actor)
        return Done(message="已登记回访")

    @api.get("/evaluations/{evaluation_id}", tags=["好差评"], summary="一条评价及其整改（仅中心主任和督查）",
             response_model=EvaluationView)
    def evaluation_view(evaluation_id: str, who: ApiCaller = confidential) -> Any:
        return evaluations.view(evaluation_id, role=who.role)

    @api.post("/evaluations/{evaluation_id}/assign", tags=["好差评"], summary="指定整改责任人", response_model=Done)
    def assign(evaluation_id: str, body: AssignIn, who: ApiCaller = staff) -> Done:
        evaluations.assign_rectification(evaluation_id, body.owner, actor=who.actor)
        return Done(message="已指定整改责任人")

    @api.post("/evaluations/{evaluation_id}/fix", tags=["好差评"], summary="登记整改情况", response_model=Done)
    def fix(evaluation_id: str, body: TextIn, who: ApiCaller = staff) -> Done:
        evaluations.record_fix(evaluation_id, body.text, actor=who.actor)
        return Done(message="已登记整改情况，等待回访评价人")

    @api.post("/evaluations/{evaluation_id}/close", tags=["好差评"], summary="差评办结", response_model=Done)
    def close(evaluation_id: str, who: ApiCaller = staff) -> Done:
        evaluations.close(evaluation_id, actor=who.actor)
        return Done(message="差评已办结")

    @api.post("/evaluations/{evaluation_id}/invalidate", tags=["好差评"], summary="复核认定为无效评价（仅中心主任）",
              response_model=Done)
    def invalidate(evaluation_id: str, body: ReasonIn, who: ApiCaller = staff) -> Done:
        if who.role is not Role.DIRECTOR:
            raise Forbidden("forbidden", "您没有权限执行此操作：复核认定无效评价须由中心主任决定，"
                                         f"您当前的身份是{who.role.label_zh}。")
        evaluations.invalidate(evaluation_id, body.reason, actor=who.actor)
        return Done(message="已复核认定为无效评价，理由已记录")

    # ------------------------------------------------------------------ 考核

    @api.get("/assessment", tags=["考核"], summary="考核统计", response_model=AssessmentOut,
             description="period：月（2026-11）、季度（2026-Q4）、年（2026）或日期区间；by：" +
                         "、".join(f"{k} {v}" for k, v in DIMENSIONS.items()) + "。")
    def report(period: str = Query("", description="时期（默认本月）"),
               by: str = Query("village", description="分组方式"), who: ApiCaller = staff) -> AssessmentOut:
        today = evaluations.clock.now().astimezone(BEIJING).date()
        r = assessment.report(parse_period(period, today), by)
        return AssessmentOut(
            title=r.title, period=r.period.label_key, period_zh=r.period.label, start=r.period.start, end=r.period.end,
            by=r.by, by_zh=DIMENSIONS[r.by], columns=[name for name, _ in COLUMNS],
            rows=[AssessmentRowOut(key=row.key, label=row.label, cells={name: row.cell(attr) for name, attr in COLUMNS},
                                   score=row.score) for row in r.rows],
            weights=dict(r.weights))

    # ------------------------------------------------------------------ 督查

    @api.get("/oversight", tags=["督查"], summary="每日超期清单", response_model=list[OverdueOut])
    def daily(who: ApiCaller = staff) -> list[OverdueOut]:
        out = []
        for it in oversight.daily():
            applicant = ""
            if who.role in CONFIDENTIAL_ROLES and it.needs_contact:
                details = handling.applicant(it.matter_id)
                applicant = f"{details.name} {details.phone}" if details is not None else ""
            out.append(_overdue(it, applicant))
        return out

    @api.post("/oversight/{hop}/{matter_id}/cause", tags=["督查"], summary="登记超期原因和解决方案", response_model=Done)
    def cause(hop: str, matter_id: str, body: CauseIn, who: ApiCaller = staff) -> Done:
        oversight.record_cause(matter_id, body.cause.value, body.solution, actor=who.actor, hop=_hop(hop))
        return Done(message="已登记超期原因和解决方案")

    @api.post("/oversight/{hop}/{matter_id}/contact", tags=["督查"], summary="登记联系申请人的情况", response_model=Done)
    def contact(hop: str, matter_id: str, body: ContactIn, who: ApiCaller = staff) -> Done:
        oversight.record_contact(matter_id, reached=body.reached, outcome=body.outcome, actor=who.actor, hop=_hop(hop))
        return Done(message="已登记联系申请人的情况")


def _hop(hop: str) -> str:
    if hop not in ("township", "county"):
        raise NotFound("not_found", "环节应为 township（乡镇）或 county（县级）")
    return hop


def _overdue(it: OverdueItem, applicant: str) -> OverdueOut:
    return OverdueOut(matter_id=it.matter_id, title=it.catalog_name, village_code=it.village_code, owner=it.owner_id,
                      hop=it.hop, due_at=it.due_at, overdue_working_days=it.overdue_working_days, cause=it.cause,
                      cause_zh=it.cause.label_zh if it.cause else "", solution=it.solution, cause_by=it.cause_by,
                      contacts=it.contacts, needs_cause=it.needs_cause, needs_contact=it.needs_contact,
                      applicant=applicant)
