"""The county's JSON API: the board's acts and queries for other platforms and scripts.

Every route calls the service the county board calls (`HubApp.handling`, the township key store) and
every act goes through `CountyHandling`, which checks the acting staff member's role and the county's
authority (`hub.acts`) exactly as for the board: an operator's token cannot decide. Matters are
addressed by their id (the county holds no lookup code).
"""
from __future__ import annotations

from fastapi import Depends, FastAPI, Query

from hub.acts import DECISIONS, Act, permission_zh
from hub.api.schemas import (
    CountOut,
    CountyActionDone,
    CountyDetailOut,
    CountyEventOut,
    CountyMatterOut,
    CountyRefusalOut,
    DecideIn,
    NewLimitIn,
    NoticeIssued,
    NoticeOut,
    NotifiedIn,
    OverdueOut,
    OverdueRowOut,
    ReasonIn,
    SuperviseIn,
    SuspendIn,
    Versioned,
)
from hub.bootstrap import HubApp
from hub.errors import ConcurrentEditError, NotPermitted, UnknownMatter, UnknownTownship
from hub.handling import Outcome, notice_status
from shared.api import ApiCaller, ApiTokens, create_api_app, create_api_tables, require
from shared.api.models import KeyOut, Me, RevokeIn
from shared.clock import from_unix_ms, to_unix_ms
from shared.console.auth import ConsoleAuth
from shared.domain.deadlines import ClockStatus
from shared.domain.handling import Role
from shared.errors import DeadlineError, HandlingError
from shared.relay.errors import KeyStoreError, UnknownKey

__all__ = ["create_hub_api", "STAFF", "HANDLERS", "KEY_MANAGERS"]

# The board's role rule (hub.console.app); the acts themselves are checked by `hub.acts` in the service.
STAFF = (Role.OPERATOR, Role.APPROVER, Role.DIRECTOR, Role.ADMINISTRATOR)
HANDLERS = (Role.OPERATOR, Role.APPROVER, Role.DIRECTOR)
KEY_MANAGERS = (Role.DIRECTOR, Role.ADMINISTRATOR)

TAGS = [
    {"name": "身份", "description": "令牌所属的工作人员"},
    {"name": "上报件", "description": "上报件看板、办件详情与县级决定、计时、督办"},
    {"name": "超期与督办", "description": "乡镇环节超期统计、督办通知"},
    {"name": "否定报备", "description": "县级不予批准登记"},
    {"name": "乡镇接入", "description": "乡镇接入密钥：列出、批准、吊销"},
]

DESCRIPTION = """县政务服务中心的 JSON 接口：上报件看板上的每项查询与操作，供其他平台对接和脚本调用。

* **身份验证**：请求头 `Authorization: Bearer <令牌>`。令牌由系统管理员在服务器上用
  `county-hub staff token create 登录名 [--expires 天数]` 创建（只显示一次），可用 `staff token revoke 编号` 吊销。
  每次调用按令牌所属工作人员的身份授权，规则与县级看板完全相同：县级决定仅限中心主任和受委托审批人。
* **办件**：路径中的 `{matter_id}` 为办件标识（看板列表中的 `matter_id`）。
* **并发**：每项操作须提交读取时的版本号 `expected_version`；办件已被他人修改时返回 409，什么也不会改变。
* **错误**：一律为 `{"code": "...", "message": "..."}`，`code` 供程序判断，`message` 为中文说明。
"""


def create_hub_api(app: HubApp, auth: ConsoleAuth) -> FastAPI:
    """The county API, to be mounted at `/api` in the board's server (`create_console_app` does it)."""
    create_api_tables(app.store.engine)
    api = create_api_app(
        title="县政务服务中心接口", description=DESCRIPTION, tokens=ApiTokens(app.store.engine, app.clock), tags=TAGS,
        errors=[(UnknownMatter, 404, "matter_not_found"), (ConcurrentEditError, 409, "version_conflict"),
                (NotPermitted, 403, "forbidden"), (HandlingError, 422, "refused"), (DeadlineError, 422, "refused"),
                (UnknownTownship, 404, "key_not_found"), (UnknownKey, 404, "key_not_found"),
                (KeyStoreError, 409, "key_refused")])
    handling = app.handling

    def staff_labels() -> dict[str, str]:
        return {a.staff_id: f"{a.display_name}（{a.role.label_zh}）" for a in auth.list_staff()}

    def township_names() -> dict[str, str]:
        names: dict[str, str] = {}
        for key in app.store.keys():
            if key.info.township_code:
                names.setdefault(key.info.township_code, key.info.holder_name)
        return names

    def actor_zh(actor: str, labels: dict[str, str], townships: dict[str, str]) -> str:
        if actor.startswith("township:"):
            code = actor.split(":", 1)[1]
            return f"乡镇（{townships.get(code) or code}）"
        if actor == "village":
            return "村代办员"
        if actor == "county-system":
            return "县政务服务中心（系统）"
        return labels.get(actor, actor)

    def detail(matter_id: str, who: ApiCaller) -> CountyDetailOut:
        h = handling.history(matter_id)
        v, m, item = h.view, h.matter, h.item
        clock = m.clock
        remaining = None
        if clock is not None and clock.start_at is not None and clock.status is ClockStatus.RUNNING:
            rem = clock.remaining_at(app.clock.now(), app.deadlines.calendar)
            remaining = rem.describe_zh() if rem is not None else None
        offered = handling.offered(h, who.role)
        labels, townships = staff_labels(), township_names()
        ext, refusal = m.pending_extension, m.pending_refusal
        return CountyDetailOut(
            **CountyMatterOut.fields_of(v),
            summary=v.summary, limit_zh=clock.limit.describe_zh() if clock is not None else None,
            remaining_zh=remaining, major=bool(item is not None and item.major),
            materials=[x.name for x in item.materials] if item is not None else [],
            pending_extension_zh=f"申请延期至{ext.new_limit.describe_zh()}：{ext.reason}" if ext is not None else None,
            pending_refusal_zh=f"申请不予批准：{refusal.reason}" if refusal is not None else None,
            allowed_acts=sorted(offered, key=lambda a: list(Act).index(a)),
            decision_refusal_zh="" if any(a in offered for a in DECISIONS) else permission_zh(Act.APPROVE, who.role, item),
            events=[CountyEventOut(at=at, actor=actor_zh(actor, labels, townships), action=action, text=text)
                    for at, actor, action, text in h.events])

    def done(matter_id: str, who: ApiCaller, message: str) -> CountyActionDone:
        return CountyActionDone(message=message, matter=detail(matter_id, who))

    @api.get("/me", tags=["身份"], summary="令牌所属的工作人员", response_model=Me)
    def me(who: ApiCaller = Depends(require(*STAFF))) -> Me:
        return Me.of(who)

    # ------------------------------------------------------------------ matters

    @api.get("/matters", tags=["上报件"], summary="上报件看板", response_model=list[CountyMatterOut],
             description="全部上报件，老年人、残疾人的在前，其余最新签收的在前；可按乡镇、只看未办结筛选。")
    def board(township: str = Query("", description="乡镇代码"), open_only: bool = Query(False, alias="open",
              description="只看办理中、待补正的"), who: ApiCaller = Depends(require(*STAFF))) -> list[CountyMatterOut]:
        return [CountyMatterOut.of(v) for v in handling.escalated(township_code=township or None, open_only=open_only)]

    @api.get("/matters/{matter_id}", tags=["上报件"], summary="上报件详情", response_model=CountyDetailOut,
             description="决定所依据的内容、县级计时、办理记录，以及您此刻可以执行的操作（不含申请人个人信息）。")
    def matter(matter_id: str, who: ApiCaller = Depends(require(*STAFF))) -> CountyDetailOut:
        return detail(matter_id, who)

    case = Depends(require(*HANDLERS))

    @api.post("/matters/{matter_id}/decide", tags=["上报件"], summary="作出县级决定", response_model=CountyActionDone,
              description="批准、不予批准（须写明理由）或需补正材料，签名下发乡镇。仅限中心主任和受委托审批人；"
                          "重大疑难事项的不予批准仅限中心主任。")
    def decide(matter_id: str, body: DecideIn, who: ApiCaller = case) -> CountyActionDone:
        handling.decide(matter_id, body.outcome, actor=who.actor, reason=body.reason,
                        missing=body.missing if body.outcome == Outcome.NEEDS_MATERIALS else (),
                        expected_version=body.expected_version)
        return done(matter_id, who, f"已作出县级决定：{Outcome.LABELS_ZH[body.outcome]}，已签名下发乡镇")

    @api.post("/matters/{matter_id}/request_refusal", tags=["上报件"], summary="申请不予批准（受委托审批人）",
              response_model=CountyActionDone, description="重大疑难事项：受委托审批人提出，报中心主任审批。")
    def request_refusal(matter_id: str, body: ReasonIn, who: ApiCaller = case) -> CountyActionDone:
        handling.request_refusal(matter_id, body.reason, actor=who.actor, expected_version=body.expected_version)
        return done(matter_id, who, "已提出不予批准申请，等待中心主任审批")

    @api.post("/matters/{matter_id}/approve_refusal", tags=["上报件"], summary="批准不予批准申请（中心主任）",
              response_model=CountyActionDone)
    def approve_refusal(matter_id: str, body: Versioned, who: ApiCaller = case) -> CountyActionDone:
        handling.decide_refusal_request(matter_id, approve=True, actor=who.actor, expected_version=body.expected_version)
        return done(matter_id, who, "已批准不予批准申请：县级不予批准，已签名下发乡镇并记入否定报备")

    @api.post("/matters/{matter_id}/decline_refusal", tags=["上报件"], summary="不同意不予批准申请（中心主任）",
              response_model=CountyActionDone)
    def decline_refusal(matter_id: str, body: Versioned, who: ApiCaller = case) -> CountyActionDone:
        handling.decide_refusal_request(matter_id, approve=False, actor=who.actor, expected_version=body.expected_version)
        return done(matter_id, who, "已不同意不予批准申请，本件继续审批")

    @api.post("/matters/{matter_id}/suspend", tags=["上报件"], summary="中止县级计时", response_model=CountyActionDone,
              description="仅限听证、招标、拍卖、检验检测检疫、鉴定、专家评审；须写明具体事项和预计所需时间。")
    def suspend(matter_id: str, body: SuspendIn, who: ApiCaller = case) -> CountyActionDone:
        after = handling.suspend(matter_id, body.reason, body.note, actor=who.actor,
                                 expected_version=body.expected_version)
        label = after.clock.suspensions[-1].reason.label_zh if after.clock is not None else ""
        return done(matter_id, who, f"县级已中止计时（{label}），已签名告知乡镇")

    @api.post("/matters/{matter_id}/resume", tags=["上报件"], summary="恢复县级计时", response_model=CountyActionDone)
    def resume(matter_id: str, body: Versioned, who: ApiCaller = case) -> CountyActionDone:
        handling.resume(matter_id, actor=who.actor, expected_version=body.expected_version)
        return done(matter_id, who, "县级已恢复计时，已签名告知乡镇")

    @api.post("/matters/{matter_id}/request_extension", tags=["上报件"], summary="申请延期（受委托审批人）",
              response_model=CountyActionDone)
    def request_extension(matter_id: str, body: NewLimitIn, who: ApiCaller = case) -> CountyActionDone:
        handling.request_extension(matter_id, body.new_limit, body.reason, actor=who.actor,
                                   expected_version=body.expected_version)
        return done(matter_id, who, "已提出延期申请，等待中心主任批准")

    @api.post("/matters/{matter_id}/extend", tags=["上报件"], summary="批准延期（中心主任）", response_model=CountyActionDone,
              description="在法定时限以内延长县级时限；须书面告知申请人后登记。")
    def extend(matter_id: str, body: NewLimitIn, who: ApiCaller = case) -> CountyActionDone:
        after = handling.extend(matter_id, body.new_limit, body.reason, actor=who.actor,
                                expected_version=body.expected_version)
        new = after.clock.limit.describe_zh() if after.clock is not None else ""
        return done(matter_id, who, f"已批准延期至{new}，已签名告知乡镇；请书面告知申请人后登记")

    @api.post("/matters/{matter_id}/approve_extension", tags=["上报件"], summary="批准延期申请（中心主任）",
              response_model=CountyActionDone)
    def approve_extension(matter_id: str, body: Versioned, who: ApiCaller = case) -> CountyActionDone:
        after = handling.decide_extension(matter_id, approve=True, actor=who.actor, expected_version=body.expected_version)
        new = after.clock.limit.describe_zh() if after.clock is not None else ""
        return done(matter_id, who, f"已批准延期至{new}，已签名告知乡镇；请书面告知申请人后登记")

    @api.post("/matters/{matter_id}/decline_extension", tags=["上报件"], summary="不批准延期申请（中心主任）",
              response_model=CountyActionDone)
    def decline_extension(matter_id: str, body: Versioned, who: ApiCaller = case) -> CountyActionDone:
        handling.decide_extension(matter_id, approve=False, actor=who.actor, expected_version=body.expected_version)
        return done(matter_id, who, "已不批准延期申请")

    @api.post("/matters/{matter_id}/extension_notified", tags=["上报件"], summary="登记已书面告知申请人延期",
              response_model=CountyActionDone)
    def extension_notified(matter_id: str, body: NotifiedIn, who: ApiCaller = case) -> CountyActionDone:
        handling.extension_notified(matter_id, body.how, actor=who.actor, expected_version=body.expected_version)
        return done(matter_id, who, "已登记书面告知申请人延期")

    @api.post("/matters/{matter_id}/supervise", tags=["超期与督办"], summary="签发督办通知", response_model=NoticeIssued,
              description="县级签名的督办通知，乡镇下次同步时送达；上报件和乡镇报来状态的办件均可督办，"
                          "乡镇环节已超期的注明超期工作日数。")
    def supervise(matter_id: str, body: SuperviseIn, who: ApiCaller = case) -> NoticeIssued:
        notice_id = handling.supervise_overdue(matter_id, body.message, actor=who.actor)
        return NoticeIssued(message="已签发督办通知，乡镇下次同步时送达", notice_id=notice_id)

    # ------------------------------------------------------------------ overdue, notices, refusals

    @api.get("/overdue", tags=["超期与督办"], summary="超期统计", response_model=OverdueOut)
    def overdue(who: ApiCaller = Depends(require(*STAFF))) -> OverdueOut:
        by_township, by_kind = handling.overdue_counts()
        names = township_names()
        catalog = handling.catalog
        rows = [OverdueRowOut(matter_id=t.matter_id, title=catalog.item(t.catalog_code).name if t.catalog_code in catalog
                              else "（目录中无此事项）", township_code=t.township_code,
                              township_name=names.get(t.township_code) or "未登记名称的乡镇", village_code=t.village_code,
                              township_due_at=t.township_due_at, overdue_working_days=handling.overdue_working_days(t),
                              message=t.message)
                for t in handling.tracked(overdue_only=True)]
        rows.sort(key=lambda r: -r.overdue_working_days)
        return OverdueOut(by_township=[CountOut(key=k, open=a, overdue=b) for k, (a, b) in by_township.items()],
                          by_kind=[CountOut(key=k, open=a, overdue=b) for k, (a, b) in by_kind.items()], matters=rows)

    @api.get("/notices", tags=["超期与督办"], summary="督办通知", response_model=list[NoticeOut],
             description="每份督办通知走到了哪一步：已签发、已送达、已回复。")
    def notices(who: ApiCaller = Depends(require(*STAFF))) -> list[NoticeOut]:
        out = []
        for n in handling.notices():
            status, label = notice_status(n)
            out.append(NoticeOut(notice_id=n["notice_id"], matter_id=n["matter_id"], township_code=n["township_code"],
                                 message=n["message"], status=status, status_zh=label,
                                 issued_at=from_unix_ms(int(n["issued_at_ms"])), issued_by=n["issued_by"],
                                 overdue_working_days=int(n["overdue_working_days"])))
        return out

    @api.get("/refusals", tags=["否定报备"], summary="否定报备", response_model=list[CountyRefusalOut])
    def refusals(who: ApiCaller = Depends(require(*STAFF))) -> list[CountyRefusalOut]:
        return [CountyRefusalOut(refused_at=e.refused_at, matter_id=e.matter_id, title=e.catalog_name,
                                 township_code=e.township_code, township_name=e.township_name or "未登记名称的乡镇",
                                 reason=e.reason, decided_by=e.decided_by, decided_by_role=e.decided_by_role,
                                 approved_by=e.approved_by, major=e.major) for e in handling.refusals()]

    # ------------------------------------------------------------------ township link keys

    keys = Depends(require(*KEY_MANAGERS))

    @api.get("/townships", tags=["乡镇接入"], summary="乡镇接入密钥", response_model=list[KeyOut])
    def townships(who: ApiCaller = Depends(require(*STAFF))) -> list[KeyOut]:
        return [KeyOut.of(k) for k in app.store.keys()]

    @api.post("/townships/{key_id}/approve", tags=["乡镇接入"], summary="批准乡镇接入密钥", response_model=KeyOut,
              description="批准前须与乡镇服务器上显示的登记指纹核对一致；此后该乡镇的上报记录予以签收。")
    def approve_township(key_id: str, who: ApiCaller = keys) -> KeyOut:
        return KeyOut.of(app.store.approve(key_id, by=who.staff_id, now_ms=to_unix_ms(app.clock.now())))

    @api.post("/townships/{key_id}/revoke", tags=["乡镇接入"], summary="吊销乡镇接入密钥", response_model=KeyOut,
              description="此后收到的该密钥记录一律拒收。")
    def revoke_township(key_id: str, body: RevokeIn, who: ApiCaller = keys) -> KeyOut:
        return KeyOut.of(app.store.revoke(key_id, by=who.staff_id, reason=body.checked_reason(),
                                          now_ms=to_unix_ms(app.clock.now())))

    return api
