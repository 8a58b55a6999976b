"""The township's JSON API: the console's staff actions and queries for programs and scripts.

Every route calls the same service the console page calls (`TownApp.handling`, `TownApp.services`,
the county link) with the same role rule, so a matter acted on here is the matter the console shows.
A matter is addressed by the lookup code on the villager's receipt (`AB3CD-EF4GH`) or by its id.
"""
from __future__ import annotations

import re
from typing import Any

from fastapi import Depends, FastAPI, Query

from shared.api import ApiCaller, ApiTokens, NotFound, Unprocessable, create_api_app, create_api_tables, require
from shared.api.models import FiguresOut, KeyOut, Me, RevokeIn
from shared.clock import from_unix_ms
from shared.console.auth import ConsoleAuth
from shared.domain.catalog import MatterKind
from shared.domain.evaluation import EvaluationError
from shared.domain.figures import MatterFacts, figures_by
from shared.domain.handling import RefusalKind, Role, Stage
from shared.domain.lookup_code import lookup_code_hash
from shared.errors import DeadlineError, HandlingError
from shared.relay.errors import KeyStoreError, UnknownKey
from town_center.api.evaluation import EVALUATION_TAGS, add_evaluation_routes
from town_center.api.front_desk import FRONT_DESK_TAG, add_front_desk_routes
from town_center.api.schemas import (
    ActionDone,
    ClassifyIn,
    ClockOut,
    CountyNoticeOut,
    DecisionIn,
    EscalateIn,
    EventOut,
    ExtensionRequestIn,
    HandOverIn,
    InboxOut,
    MaterialOut,
    MaterialsRequestIn,
    MatterDetailOut,
    MatterOut,
    NoticeAnswerIn,
    PendingOut,
    RefusalOut,
    RefusalRequestIn,
    ResultIn,
    SupervisionOut,
    SuspendIn,
    Versioned,
)
from town_center.bootstrap import TownApp
from town_center.errors import ConcurrentEditError, UnknownAgent, UnknownMatter
from town_center.evaluation import Evaluations
from town_center.front_desk.errors import StaleEntry, UnknownEntry
from town_center.handling import COUNTY_HOP

__all__ = ["create_town_api", "STAFF", "HANDLERS", "AGENT_MANAGERS"]

# The console's role rule (town_center.console.app): reading is for every staff member; casework for
# operators and the director; decisions on extensions and refusals for the director; device keys for
# the director and the administrator.
STAFF = (Role.OPERATOR, Role.DIRECTOR, Role.ADMINISTRATOR)
HANDLERS = (Role.OPERATOR, Role.DIRECTOR)
AGENT_MANAGERS = (Role.ADMINISTRATOR, Role.DIRECTOR)

_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_CODE_RE = re.compile(f"^[{_ALPHABET}]{{5}}-?[{_ALPHABET}]{{5}}$")
_GROUPS = {"village": "按村", "agent": "按代办员", "operator": "按窗口工作人员"}

TAGS = [
    {"name": "身份", "description": "令牌所属的工作人员"},
    {"name": "办件", "description": "收件箱、办件详情与办件页面上的各项操作"},
    {"name": "督办与审批", "description": "督办清单、待审批延期、否定报备、县级督办通知"},
    {"name": "代办员设备", "description": "代办员笔记本的设备密钥：列出、批准、吊销"},
    {"name": "统计", "description": "按村、代办员、工作人员的办件统计"},
    FRONT_DESK_TAG,
    *EVALUATION_TAGS,
]

DESCRIPTION = """乡镇便民服务中心的 JSON 接口：网页控制台上的每项查询与操作，供县级平台对接和脚本调用。

* **身份验证**：请求头 `Authorization: Bearer <令牌>`。令牌由系统管理员在服务器上用
  `town-center staff token create 登录名 [--expires 天数]` 创建（只显示一次），可用 `staff token revoke 编号` 吊销。
  每次调用按令牌所属工作人员的身份授权，规则与网页控制台完全相同。本接口不接受网页登录的会话。
* **办件**：路径中的 `{ref}` 可以是回执上的查询码（如 `AB3CD-EF4GH`），也可以是办件标识 `matter_id`。
* **并发**：每项操作须提交读取时的版本号 `expected_version`；办件已被他人修改时返回 409，什么也不会改变。
* **错误**：一律为 `{"code": "...", "message": "..."}`，`code` 供程序判断，`message` 为中文说明。
"""


def _actor_zh(actor: str, names: dict[str, str], village_code: str) -> str:
    if actor.startswith("village"):
        return f"村代办员（{village_code}）"
    if actor == "county":
        return "县政务服务中心"
    return names.get(actor, actor)


def create_town_api(app: TownApp, auth: ConsoleAuth) -> FastAPI:
    """The township API, to be mounted at `/api` in the console server (`create_console_app` does it)."""
    create_api_tables(app.store.engine)
    api = create_api_app(
        title="乡镇便民服务中心接口", description=DESCRIPTION, tokens=ApiTokens(app.store.engine, app.clock), tags=TAGS,
        errors=[(UnknownMatter, 404, "matter_not_found"), (ConcurrentEditError, 409, "version_conflict"),
                (HandlingError, 422, "refused"), (DeadlineError, 422, "refused"), (UnknownAgent, 404, "key_not_found"),
                (UnknownKey, 404, "key_not_found"), (KeyStoreError, 409, "key_refused"),
                (UnknownEntry, 404, "not_found"), (StaleEntry, 409, "version_conflict"),
                (EvaluationError, 422, "refused")])
    handling = app.handling
    if app.front_desk is not None:
        add_front_desk_routes(api, app.front_desk)
    add_evaluation_routes(api, Evaluations(handling))

    def names() -> dict[str, str]:
        return {a.staff_id: a.display_name for a in auth.list_staff()}

    def resolve(ref: str) -> str:
        raw = re.sub(r"\s+", "", ref).upper()
        if _CODE_RE.match(raw):
            code = raw if "-" in raw else f"{raw[:5]}-{raw[5:]}"
            found = handling.matter_id_for_lookup_hash(lookup_code_hash(code))
            if found is None:
                raise NotFound("matter_not_found", "找不到与该查询码对应的办件，请核对回执上的查询码")
            return found
        return ref

    def detail(matter_id: str, who: ApiCaller) -> MatterDetailOut:
        page = handling.page(matter_id)
        m, item = page.matter, page.item
        staff_names = names()
        now = app.clock.now()
        calendar, thresholds = app.deadlines.calendar, app.deadlines.thresholds
        county = app.deadlines.load_clock(matter_id, COUNTY_HOP) if m.kind is MatterKind.REPORTED else None
        brought = set(page.materials_brought)
        materials = [MaterialOut(name=x.name, main=main, brought=x.id in brought) for main, group in
                     ((True, item.main_materials if item else ()), (False, item.auxiliary_materials if item else ()))
                     for x in group]
        ext, refusal = m.pending_extension, m.pending_refusal
        return MatterDetailOut(
            **MatterOut.of(page.summary, staff_names).model_dump(),
            township_clock=ClockOut.of(m.clock, now, calendar, thresholds) if m.clock is not None else None,
            county_clock=ClockOut.of(county, now, calendar, thresholds) if county is not None else None,
            major=bool(item is not None and item.major), materials=materials, missing_materials=list(m.missing_materials),
            written_promise=m.written_promise, result_summary=m.result_summary,
            pending_extension_request=PendingOut(what_zh=f"申请延期至{ext.new_limit.describe_zh()}", reason=ext.reason)
            if ext is not None else None,
            pending_refusal_request=PendingOut(what_zh=f"申请{refusal.kind.label_zh}", reason=refusal.reason)
            if refusal is not None else None,
            allowed_actions=sorted(handling.actions_for(m, who.role)),
            allowed_kinds=handling.allowed_kinds(m) if m.stage is Stage.RECEIVED else [],
            events=[EventOut(at=e.at, actor=_actor_zh(e.actor, staff_names, page.summary.village_code), action=e.action,
                             text=e.text_zh) for e in page.events])

    def done(matter_id: str, who: ApiCaller, message: str) -> ActionDone:
        return ActionDone(message=message, matter=detail(matter_id, who))

    # ------------------------------------------------------------------ who

    @api.get("/me", tags=["身份"], summary="令牌所属的工作人员", response_model=Me)
    def me(who: ApiCaller = Depends(require(*STAFF))) -> Me:
        return Me.of(who)

    # ------------------------------------------------------------------ matters: queries

    @api.get("/matters", tags=["办件"], summary="收件箱", response_model=InboxOut,
             description="最新收件在前；老年人、残疾人的办件在每页最前。可按村、环节、本人承办筛选，分页。")
    def inbox(village: str = Query("", description="村代码"), stage: Stage | None = Query(None, description="环节"),
              mine: bool = Query(False, description="只看本人承办的"), page: int = Query(1, ge=1, description="页码"),
              page_size: int = Query(100, ge=1, le=500, description="每页件数"),
              who: ApiCaller = Depends(require(*STAFF))) -> InboxOut:
        box = handling.inbox_page(village_code=village or None, stages=[stage] if stage else None,
                                  owner=who.staff_id if mine else None, page=page, page_size=page_size)
        staff_names = names()
        return InboxOut(items=[MatterOut.of(s, staff_names) for s in box.items], total=box.total, page=box.page,
                        pages=box.pages, page_size=box.page_size)

    @api.get("/matters/{ref}", tags=["办件"], summary="办件详情", response_model=MatterDetailOut,
             description="办件页面上的内容：环节、计时、材料、办理记录，以及您此刻可以执行的操作（不含申请人个人信息）。")
    def matter(ref: str, who: ApiCaller = Depends(require(*STAFF))) -> MatterDetailOut:
        return detail(resolve(ref), who)

    @api.get("/colleagues", tags=["办件"], summary="可交接的同事", response_model=list[Me],
             description="AB 岗交接时可以接手的本中心在岗工作人员（`hand_over` 的 `to_staff` 取其登录名）。")
    def colleagues(who: ApiCaller = Depends(require(*STAFF))) -> list[Me]:
        return [Me(staff_id=a.staff_id, display_name=a.display_name, role=a.role, role_zh=a.role.label_zh)
                for a in auth.list_staff(include_disabled=False) if a.role is not Role.ADMINISTRATOR]

    # ------------------------------------------------------------------ matters: actions

    handler = Depends(require(*HANDLERS))
    director = Depends(require(Role.DIRECTOR))

    @api.post("/matters/{ref}/classify", tags=["办件"], summary="受理并分类", response_model=ActionDone,
              description="按本乡镇的审批权限受理为即办、承诺、补办、退回、联办或上报件；操作人成为承办人。")
    def classify(ref: str, body: ClassifyIn, who: ApiCaller = handler) -> ActionDone:
        matter_id = resolve(ref)
        handling.classify(matter_id, body.kind, actor=who.actor, expected_version=body.expected_version,
                          missing_materials=[x.strip() for x in body.missing_materials if x.strip()],
                          return_reason=body.return_reason, promised_limit=body.promise.limit() if body.promise else None,
                          lead_window=body.lead_window, departments=[x.strip() for x in body.departments if x.strip()])
        return done(matter_id, who, f"已受理，按{body.kind.label_zh}办理" if body.kind is not MatterKind.RETURNED
                    else "已按退回件办理，并登记否定报备")

    @api.post("/matters/{ref}/request_refusal", tags=["办件"], summary="申请不予受理或不予批准",
              response_model=ActionDone, description="重大疑难事项：窗口工作人员提出，由中心主任审批。")
    def request_refusal(ref: str, body: RefusalRequestIn, who: ApiCaller = handler) -> ActionDone:
        matter_id = resolve(ref)
        handling.request_refusal(matter_id, body.refusal_kind, body.reason, actor=who.actor,
                                 expected_version=body.expected_version)
        return done(matter_id, who, f"{body.refusal_kind.label_zh}申请已提交，等待中心主任审批")

    @api.post("/matters/{ref}/decide_refusal", tags=["办件"], summary="审批不予受理或不予批准申请（中心主任）",
              response_model=ActionDone)
    def decide_refusal(ref: str, body: DecisionIn, who: ApiCaller = director) -> ActionDone:
        matter_id = resolve(ref)
        handling.decide_refusal(matter_id, approve=body.approve, actor=who.actor, expected_version=body.expected_version)
        return done(matter_id, who, "已批准，并登记否定报备" if body.approve else "未批准，本件继续办理")

    @api.post("/matters/{ref}/materials_completed", tags=["办件"], summary="登记材料补齐", response_model=ActionDone,
              description="补办件材料已补齐（或补正材料已核对），开始或恢复计时。")
    def materials_completed(ref: str, body: Versioned, who: ApiCaller = handler) -> ActionDone:
        matter_id = resolve(ref)
        handling.materials_completed(matter_id, actor=who.actor, expected_version=body.expected_version)
        return done(matter_id, who, "已登记材料补齐，开始计时")

    @api.post("/matters/{ref}/request_materials", tags=["办件"], summary="一次性告知补正材料", response_model=ActionDone,
              description="一次性书面告知所缺的全部材料；补正期间不计时。")
    def request_materials(ref: str, body: MaterialsRequestIn, who: ApiCaller = handler) -> ActionDone:
        matter_id = resolve(ref)
        missing = [x.strip() for x in body.missing_materials if x.strip()]
        if not missing:
            raise Unprocessable("refused", "须一次性告知所缺的全部材料")
        handling.request_materials(matter_id, missing, actor=who.actor, expected_version=body.expected_version)
        return done(matter_id, who, "已一次性告知需补正的材料，补正期间不计时")

    @api.post("/matters/{ref}/suspend", tags=["办件"], summary="中止计时", response_model=ActionDone)
    def suspend(ref: str, body: SuspendIn, who: ApiCaller = handler) -> ActionDone:
        matter_id = resolve(ref)
        handling.suspend(matter_id, body.reason, body.note, actor=who.actor, expected_version=body.expected_version)
        return done(matter_id, who, "已中止计时")

    @api.post("/matters/{ref}/resume", tags=["办件"], summary="恢复计时", response_model=ActionDone)
    def resume(ref: str, body: Versioned, who: ApiCaller = handler) -> ActionDone:
        matter_id = resolve(ref)
        handling.resume(matter_id, actor=who.actor, expected_version=body.expected_version)
        return done(matter_id, who, "已恢复计时")

    @api.post("/matters/{ref}/request_extension", tags=["办件"], summary="申请延期", response_model=ActionDone,
              description="提出延期申请，由中心主任审批。")
    def request_extension(ref: str, body: ExtensionRequestIn, who: ApiCaller = handler) -> ActionDone:
        matter_id = resolve(ref)
        handling.request_extension(matter_id, body.new_limit.limit(), body.reason, actor=who.actor,
                                   expected_version=body.expected_version)
        return done(matter_id, who, "延期申请已提交，等待主任审批")

    @api.post("/matters/{ref}/decide_extension", tags=["办件"], summary="审批延期申请（中心主任）",
              response_model=ActionDone)
    def decide_extension(ref: str, body: DecisionIn, who: ApiCaller = director) -> ActionDone:
        matter_id = resolve(ref)
        handling.decide_extension(matter_id, approve=body.approve, actor=who.actor,
                                  expected_version=body.expected_version)
        return done(matter_id, who, "已批准延期，请书面告知申请人" if body.approve else "已不予批准延期")

    @api.post("/matters/{ref}/extension_notified", tags=["办件"], summary="登记已书面告知申请人延期",
              response_model=ActionDone)
    def extension_notified(ref: str, body: Versioned, who: ApiCaller = handler) -> ActionDone:
        matter_id = resolve(ref)
        handling.applicant_notified_of_extension(matter_id, actor=who.actor, expected_version=body.expected_version)
        return done(matter_id, who, "已登记书面告知申请人延期")

    @api.post("/matters/{ref}/hand_over", tags=["办件"], summary="AB 岗交接", response_model=ActionDone,
              description="交给本中心另一名在岗工作人员承办；原承办人继续关注本件。")
    def hand_over(ref: str, body: HandOverIn, who: ApiCaller = handler) -> ActionDone:
        matter_id = resolve(ref)
        handling.hand_over(matter_id, body.to_staff, body.reason, actor=who.actor, expected_version=body.expected_version)
        return done(matter_id, who, "已完成 AB 岗交接")

    @api.post("/matters/{ref}/record_result", tags=["办件"], summary="登记办理结果", response_model=ActionDone,
              description="准予或不予批准，仅限本乡镇有权决定的事项；不予批准记入否定报备。")
    def record_result(ref: str, body: ResultIn, who: ApiCaller = handler) -> ActionDone:
        matter_id = resolve(ref)
        handling.record_result(matter_id, approved=body.approved, summary=body.summary, actor=who.actor,
                               expected_version=body.expected_version)
        return done(matter_id, who, "已登记办理结果")

    @api.post("/matters/{ref}/escalate", tags=["办件"], summary="签名上报县政务服务中心", response_model=ActionDone,
              description="上报件：附乡镇初审意见签名上报；乡镇环节计时至县级签收为止。")
    def escalate(ref: str, body: EscalateIn, who: ApiCaller = handler) -> ActionDone:
        matter_id = resolve(ref)
        if not body.opinion.strip():
            raise Unprocessable("refused", "上报须填写乡镇初审意见")
        if not body.confirm:
            raise Unprocessable("refused", "请核对材料与初审意见后确认（confirm 为 true），再签名上报")
        handling.escalate(matter_id, body.opinion, actor=who.actor, expected_version=body.expected_version)
        if app.county_link is not None:
            app.county_link.wake()
        return done(matter_id, who, "已签名上报县政务服务中心，等待县级签收")

    # ------------------------------------------------------------------ 督办, extensions, refusals, county notices

    @api.get("/supervision", tags=["督办与审批"], summary="督办清单", response_model=SupervisionOut)
    def supervision(who: ApiCaller = Depends(require(*STAFF))) -> SupervisionOut:
        staff_names = names()
        return SupervisionOut(overdue=[MatterOut.of(s, staff_names) for s in handling.supervision_list()],
                              county_overdue=[MatterOut.of(s, staff_names) for s in handling.county_overdue()])

    @api.get("/extensions", tags=["督办与审批"], summary="待审批的延期申请", response_model=list[MatterOut])
    def extensions(who: ApiCaller = Depends(require(*STAFF))) -> list[MatterOut]:
        staff_names = names()
        return [MatterOut.of(s, staff_names) for s in handling.pending_extensions()]

    @api.get("/refusals", tags=["督办与审批"], summary="否定报备", response_model=list[RefusalOut])
    def refusals(who: ApiCaller = Depends(require(*STAFF))) -> list[RefusalOut]:
        titles = {i.code: i.name for i in handling.catalog}
        return [RefusalOut(matter_id=r["matter_id"], title=titles.get(r["catalog_code"], r["catalog_code"]),
                           refusal_kind=RefusalKind(r["refusal_kind"] or "not_accepted"),
                           refusal_kind_zh=RefusalKind(r["refusal_kind"] or "not_accepted").label_zh, reason=r["reason"],
                           at=from_unix_ms(int(r["at_ms"])), by=r["operator_id"], approved_by=r["approved_by"] or "")
                for r in handling.refusals()]

    @api.get("/county-notices", tags=["督办与审批"], summary="县级督办通知", response_model=list[CountyNoticeOut])
    def county_notices(who: ApiCaller = Depends(require(*STAFF))) -> list[CountyNoticeOut]:
        link = app.county_link
        titles = {i.code: i.name for i in handling.catalog}
        out = []
        for n in (link.open_notices() if link is not None else []):
            row: dict[str, Any] = dict(n)
            try:
                code = handling.page(str(row["matter_id"])).summary.catalog_code
            except UnknownMatter:
                code = ""
            out.append(CountyNoticeOut(
                notice_id=str(row["notice_id"]), matter_id=str(row["matter_id"]), title=titles.get(code, "（本乡镇无此办件）"),
                message=str(row["message"]), overdue_working_days=int(row["overdue_working_days"]),
                issued_at=from_unix_ms(int(row["issued_at_ms"])),
                acknowledged_at=from_unix_ms(int(row["acknowledged_at_ms"])) if row["acknowledged_at_ms"] else None,
                explanation=row["explanation"]))
        return out

    @api.post("/county-notices/{notice_id}/answer", tags=["督办与审批"], summary="回复县级督办", response_model=dict[str, str])
    def answer_county_notice(notice_id: str, body: NoticeAnswerIn, who: ApiCaller = handler) -> dict[str, str]:
        link = app.county_link
        if link is None:
            raise NotFound("not_linked", "本乡镇尚未接入县政务服务中心")
        if not any(str(n["notice_id"]) == notice_id for n in link.open_notices()):
            raise NotFound("notice_not_found", "找不到该督办通知")
        link.acknowledge(notice_id, body.explanation, by=who.staff_id)
        return {"message": "已回复县级督办"}

    # ------------------------------------------------------------------ agents

    @api.get("/agents", tags=["代办员设备"], summary="代办员设备密钥", response_model=list[KeyOut])
    def agents(who: ApiCaller = Depends(require(*STAFF))) -> list[KeyOut]:
        return [KeyOut.of(a) for a in app.services.list_agents()]

    @api.post("/agents/{key_id}/approve", tags=["代办员设备"], summary="批准设备密钥", response_model=KeyOut,
              description="批准前须与代办员笔记本上显示的登记指纹核对一致。")
    def approve_agent(key_id: str, who: ApiCaller = Depends(require(*AGENT_MANAGERS))) -> KeyOut:
        return KeyOut.of(app.services.approve(key_id, by=who.staff_id))

    @api.post("/agents/{key_id}/revoke", tags=["代办员设备"], summary="吊销设备密钥", response_model=KeyOut,
              description="此后收到的该设备记录一律拒收；此前已收的记录仍然有效。")
    def revoke_agent(key_id: str, body: RevokeIn, who: ApiCaller = Depends(require(*AGENT_MANAGERS))) -> KeyOut:
        return KeyOut.of(app.services.revoke(key_id, by=who.staff_id, reason=body.checked_reason()))

    # ------------------------------------------------------------------ figures

    @api.get("/figures", tags=["统计"], summary="办件统计", response_model=list[FiguresOut],
             description="by=village 按村、agent 按代办员、operator 按窗口工作人员。")
    def figures(by: str = Query("village", pattern="^(village|agent|operator)$", description="分组方式"),
                who: ApiCaller = Depends(require(*STAFF))) -> list[FiguresOut]:
        keys = {"village": lambda m: m.village_code, "agent": lambda m: m.agent_key_id,
                "operator": lambda m: m.operator_id}
        key = keys[by]
        if by == "agent":
            agent_names = {a.key_id: f"{a.info.village_code} {a.info.holder_name}" for a in app.services.list_agents()}
            label = lambda k: agent_names.get(k, "未登记的设备")  # noqa: E731 - one-line label per group
        elif by == "operator":
            staff_names = names()
            label = lambda k: staff_names.get(k, k)  # noqa: E731 - as above
        else:
            label = str
        facts: list[MatterFacts] = handling.matter_facts()
        return [FiguresOut.of(f, label(f.key)) for f in figures_by(facts, key)]

    return api
