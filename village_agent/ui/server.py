"""The village agent's local web UI: server-rendered Chinese pages over `AgentService`.

Local only, and defended as if it were not: a page in the agent's browser from any other site can
still send POSTs to 127.0.0.1 (CSRF) or rebind its own domain name to 127.0.0.1 (DNS rebinding), and
a UI bound beyond loopback is reachable from the LAN. So every request must carry a Host header
naming this machine, every POST must carry the per-process CSRF token, a foreign Origin is refused
outright, and nothing but the unlock page answers until the agent has typed the passphrase or PIN
(`village_agent.ui.unlock`; the UI relocks when idle). Every answer carries the security headers
of `shared.console.guard` (a strict Content-Security-Policy: scripts from /static only).

Handlers are `async def` and call the service directly on the event loop: one agent, one laptop,
so serialising every write through the loop costs nothing and keeps SQLite single-writer.
Nothing here logs request bodies, names, ID numbers or phones; uvicorn's access log is off.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import logging
import secrets
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.clock import SystemClock, from_unix_ms, to_unix_ms
from shared.console.guard import WebSecurity, is_loopback_address, uvicorn_options, with_security_headers
from shared.domain.catalog import IntakeOutcome, MaterialsAssessment
from shared.errors import SharedError
from shared.wire.v1 import records_pb2
from village_agent import domain
from village_agent.config import Paths
from village_agent.domain import RATING_ZH, AppointmentStatus, MatterState, MatterStatus
from village_agent.errors import AgentError, FieldProblem, FormError, StoreError, TransitionError, UnknownMatterError
from village_agent.hop import VillageHop, village_hop
from village_agent.notice import authorization_text
from village_agent.receipt import VillageDocuments, build_receipt, format_due
from village_agent.services import (
    MAX_EVIDENCE_BYTES,
    PLACES,
    RATINGS,
    SHANGHAI,
    AgentService,
    Confirmation,
    RequestForm,
)
from village_agent.sync_text import plain_sync_text
from village_agent.ui.errors import UnlockRefused
from village_agent.ui.unlock import UNLOCK_COOKIE, UnlockGate, UnlockPin, UnlockPolicy

log = logging.getLogger("village_agent.ui")

HERE = Path(__file__).parent
CSRF_FIELD = "csrf_token"
PAGE_SIZE = 50
# A form holds at most one image (≤ 3 MB, base64 adds a third) plus short text fields.
MAX_BODY_BYTES = 6 * 1024 * 1024
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
UNLOCK_PATH = "/unlock"
LOCK_PATH = "/lock"
# Reachable while locked: the unlock page itself and the stylesheet and script it uses.
_OPEN_WHILE_LOCKED = (UNLOCK_PATH, "/static/")
WARNING_WINDOW_MS = 24 * 3600 * 1000  # amber in the last day before the deadline, if the township has not said so already

RATING_CHOICES = [(key, RATING_ZH[value]) for key, value in RATINGS.items()]
PLACE_ZH = {"service_room": "村便民服务室", "applicant_home": "申请人家中", "township_center": "乡镇便民服务中心"}
PLACE_ZH_BY_ENUM = {PLACES[k]: v for k, v in PLACE_ZH.items()}
AUTH_METHOD_ZH = {"drawn_signature": "现场手写签名", "photo_of_form": "拍摄或上传已签字的委托书",
                  "fingerprint": "按手印（拍摄按了手印的委托书）", "witness": "见证人证明"}
CONFIRM_METHOD_ZH = {"drawn_signature": "在框内签名", "photo_of_form": "拍摄签了字的签收单",
                     "fingerprint": "按手印（拍摄按了手印的签收单）", "witness": "见证人证明"}
NOT_FOUND_ZH = "没有找到这个页面。"
UNKNOWN_MATTER_ZH = "本机没有这个事项：链接可能已失效，或事项登记在另一台电脑上。请从“我的事项”中查找，或输入回执上的查询码。"

# Record kinds as the agent reads them in a matter's history; unknown kinds still show in Chinese.
KIND_ZH = {
    "request_filed": "登记代办申请", "materials_added": "补充材料", "appointment_made": "预约",
    "appointment_forfeited": "预约失约", "visit_recorded": "上门服务", "withdrawn": "撤回",
    "result_handed_over": "交付办理结果", "signed_off": "群众签收评价", "follow_up_called": "回访",
    "matter_classified": "乡镇受理分类", "status_update": "乡镇进度更新", "hop_clock_changed": "计时变更",
    "result_ready": "办理结果已出", "decision": "审批决定", "supervision_notice": "督办通知",
    "escalation": "上报县级", "document_issued": "签发文书",
}
# Short notices after a redirect; the query string carries only this key, never data.
DONE_ZH = {
    "materials": "已登记补充材料。", "handover": "已交付办理结果，请群众签收评价。", "withdraw": "事项已撤回。",
    "signoff": "群众已签收并评价，本次代办服务结束。", "appointment": "已登记预约。", "visit": "已登记上门服务。",
    "forfeit": "已登记联系情况，预约已标记为失约，请与群众另约时间。",
}


# ---------------------------------------------------------------------------- sync status port


@dataclass(frozen=True)
class Reachability:
    """Whether the township relay answered; `None` means nobody knows yet (not wired or not tried)."""

    reachable: bool | None
    detail: str = ""


# The relay loop will provide one of these; without it the page says honestly that it does not know.
SyncStatus = Callable[[], Reachability]


@dataclass(frozen=True)
class SyncPanel:
    waiting: int
    last_sync_at: str
    reachable: bool | None
    reachable_zh: str
    detail: str


def sync_panel(service: AgentService, sync_status: SyncStatus | None) -> SyncPanel:
    waiting = service.store.outbox_size()
    raw = service.store.get_meta("last_sync_at_ms", "")
    try:
        last_ms = int(raw) if raw else 0
    except ValueError:
        last_ms = 0
    last = f"{from_unix_ms(last_ms).astimezone(SHANGHAI):%Y-%m-%d %H:%M}" if last_ms else "从未同步"
    if sync_status is None:
        return SyncPanel(waiting, last, None, "未连接", "后台同步尚未启动，无法判断乡镇中心是否可达。")
    try:
        state = sync_status()
    except Exception:  # a broken probe must not take the page down; say we do not know
        log.exception("sync status probe failed")
        state = Reachability(None, "无法获取同步状态")
    zh = {True: "可以连接", False: "无法连接", None: "未知"}[state.reachable]
    return SyncPanel(waiting, last, state.reachable, zh, plain_sync_text(state.detail))


# ---------------------------------------------------------------------------- deadline colour


@dataclass(frozen=True)
class DeadlineBadge:
    css: str      # on-time / warning / overdue / untimed
    label: str    # Chinese
    due: str


def deadline_badge(state: MatterState, now_ms: int) -> DeadlineBadge:
    """Green on time, amber close to the limit, red overdue, grey when no clock runs."""
    due = format_due(state.due_at_ms) if state.due_at_ms else "—"
    if state.closed or state.status is MatterStatus.HANDED_OVER:
        return DeadlineBadge("untimed", "已办结" if state.status is not MatterStatus.RETURNED else "已退回", due)
    if state.clock_state == records_pb2.CLOCK_STATE_SUSPENDED or state.status is MatterStatus.SUSPENDED:
        return DeadlineBadge("untimed", "暂停计时", due)
    if state.clock_state == records_pb2.CLOCK_STATE_STOPPED:
        return DeadlineBadge("untimed", "停止计时", due)
    if not state.due_at_ms:
        return DeadlineBadge("untimed", "未计时", "乡镇受理后开始计时")
    if state.clock_state == records_pb2.CLOCK_STATE_SUPERVISED:
        return DeadlineBadge("overdue", "超期督办", due)
    if state.clock_state == records_pb2.CLOCK_STATE_OVERDUE or now_ms > state.due_at_ms:
        return DeadlineBadge("overdue", "已超期", due)
    if state.clock_state == records_pb2.CLOCK_STATE_WARNING or state.due_at_ms - now_ms <= WARNING_WINDOW_MS:
        return DeadlineBadge("warning", "临期预警", due)
    return DeadlineBadge("on-time", "按时办理中", due)


# ---------------------------------------------------------------------------- guards (ASGI)


def _host_only(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class LocalGuard:
    """Refuse any request whose Host is not this machine (DNS rebinding), whose Origin is another
    site, or whose body is larger than any form here needs. Pure ASGI so it runs before parsing."""

    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str]) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = _host_only(headers.get("host", ""))
        send = with_security_headers(send)
        if host not in self.allowed_hosts:
            await _plain(403, "拒绝访问：网址中的服务器名称不是本机的名称。请在本机用 http://127.0.0.1 打开；"
                              "如需用其他名称访问，请用 --allowed-host 添加。")(scope, receive, send)
            return
        origin = headers.get("origin")
        if origin is not None and scope["method"] not in ("GET", "HEAD"):
            if _host_only(urllib.parse.urlsplit(origin).netloc) not in self.allowed_hosts:
                await _plain(403, "拒绝访问：请求来自其他网站。")(scope, receive, send)
                return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            await _plain(413, "提交的内容过大（图片请小于 3 MB）。")(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _plain(status: int, message: str) -> Response:
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>错误</title><p>{message}</p>", status_code=status)


def _safe_next(value: str) -> str:
    """Only a path on this UI: the unlock form must not become an open redirect."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value or any(ord(ch) < 32 for ch in value):
        return "/"
    return value


class UnlockGuard:
    """Nothing but the unlock page (and its static files) answers without a live unlock session:
    pages redirect to it, the JSON checklist gets 401, a form posted after the UI relocked is sent
    to the unlock page too (nothing was saved; the agent unlocks and fills it in again)."""

    def __init__(self, app: ASGIApp, gate: UnlockGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == UNLOCK_PATH or any(path.startswith(p) for p in _OPEN_WHILE_LOCKED if p.endswith("/")):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.gate.session_ok(request.cookies.get(UNLOCK_COOKIE)):
            await self.app(scope, receive, send)
            return
        if path.startswith("/api/"):
            response: Response = JSONResponse({"ok": False, "error": "界面已锁定，请先输入口令或 PIN 解锁。"}, status_code=401)
        else:
            here = path + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else "")
            target = UNLOCK_PATH if scope["method"] not in ("GET", "HEAD") or here == "/" else \
                f"{UNLOCK_PATH}?{urllib.parse.urlencode({'next': here})}"
            response = RedirectResponse(target, status_code=303)
        response.headers["Cache-Control"] = "no-store"
        await response(scope, receive, send)


# ---------------------------------------------------------------------------- the app


def _jinja() -> jinja2.Environment:
    # Autoescape: names and addresses typed by villagers end up in these pages.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["ms_local"] = lambda ms: f"{from_unix_ms(ms).astimezone(SHANGHAI):%Y-%m-%d %H:%M}" if ms else "—"
    return env


def default_unlock_gate(service: AgentService, policy: UnlockPolicy | None = None) -> UnlockGate:
    """The passphrase checked against this laptop's key file, or the agent's PIN if one was set."""
    paths = Paths(service.store.path.parent)
    # The real clock, not the service's: idleness is the agent's, whatever time the records are given.
    return UnlockGate(paths.key, SystemClock(), pin=UnlockPin(paths.unlock_pin, service.signer), policy=policy)


def create_app(service: AgentService, *, sync_status: SyncStatus | None = None,
               allowed_hosts: frozenset[str] = LOCAL_HOSTS, unlock: UnlockGate | None = None) -> FastAPI:
    """The UI over one open `AgentService`. `sync_status` is the relay's reachability probe, if it
    runs. `unlock` checks the passphrase
    or PIN (by default against this laptop's own key file and PIN file)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    gate = unlock or default_unlock_gate(service)
    csrf_token = secrets.token_urlsafe(32)  # per process: a restart invalidates forms left open, which is fine
    env = _jinja()
    # The 委托书's words, shown before the villager signs (the printed 委托书 carries the same).
    env.globals["authorization_text"] = authorization_text
    from shared.calendar import calendar_warning_zh

    calendar = service.calendar

    def calendar_warning() -> str:
        # Deadlines shown here reach a few months ahead; warn while any of those years is unconfirmed.
        today = service.clock.now().astimezone(SHANGHAI).date()
        return calendar_warning_zh(calendar, today, today + dt.timedelta(days=120)) or ""

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        done = request.query_params.get("done", "")
        base = {"csrf_token": csrf_token, "csrf_field": CSRF_FIELD, "nav_waiting": service.store.outbox_size(),
                "notice": DONE_ZH.get(done, ""), "village_name": service.config.village_name,
                "agent_name": service.config.agent_name, "path": request.url.path,
                "calendar_warning": calendar_warning()}
        html = env.get_template(name).render(**base, **context)
        return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})

    def message(request: Request, text: str, status_code: int) -> HTMLResponse:
        return render(request, "message.html", status_code=status_code, message=text)

    async def read_form(request: Request) -> FormData:
        try:
            form = await request.form(max_files=2, max_fields=200, max_part_size=MAX_BODY_BYTES)
        except MultiPartException as exc:
            raise _Refused(400, "表单无法解析，请重新提交。") from exc
        token = form.get(CSRF_FIELD)
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), csrf_token.encode()):
            raise _Refused(403, "表单已过期或来源不明（缺少安全校验码），请返回重新打开页面后再提交。")
        return form

    def now_ms() -> int:
        return to_unix_ms(service.clock.now())

    # ------------------------------------------------------------ errors

    @app.exception_handler(_Refused)
    async def on_refused(request: Request, exc: _Refused) -> Response:
        return message(request, exc.text, exc.status)

    def not_found(request: Request, text: str) -> HTMLResponse:
        return render(request, "not_found.html", status_code=404, message=text)

    @app.exception_handler(UnknownMatterError)
    async def on_unknown(request: Request, exc: UnknownMatterError) -> Response:
        # Never echo the link's id back: the agent knows matters by lookup code and title.
        return not_found(request, UNKNOWN_MATTER_ZH)

    @app.exception_handler(TransitionError)
    async def on_transition(request: Request, exc: TransitionError) -> Response:
        return message(request, str(exc), 409)

    @app.exception_handler(StoreError)
    async def on_store(request: Request, exc: StoreError) -> Response:
        return message(request, str(exc), 503)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return not_found(request, NOT_FOUND_ZH)
        text = {405: "不支持这种操作方式。"}.get(exc.status_code, "请求无法处理。")
        return message(request, text, exc.status_code)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> Response:
        # The type only: an exception's message may quote what was typed.
        log.error("page failed: %s %s", request.url.path, type(exc).__name__)
        return message(request, "出现内部错误，本次操作可能没有保存。请返回检查后重试。", 500)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        return message(request, "请求参数不正确。", 400)

    # ------------------------------------------------------------ unlock

    def unlock_page(request: Request, *, error: str = "", next_url: str = "/", status_code: int = 200) -> HTMLResponse:
        html = env.get_template("unlock.html").render(
            csrf_token=csrf_token, csrf_field=CSRF_FIELD, village_name=service.config.village_name,
            agent_name=service.config.agent_name, error=error, next=next_url,
            idle_minutes=int(gate.policy.idle_timeout.total_seconds() // 60),
            pin_set=gate.pin is not None and gate.pin.is_set(), locked=request.query_params.get("locked") == "1")
        return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})

    @app.get(UNLOCK_PATH, response_class=HTMLResponse)
    async def unlock_form(request: Request, next: str = "/") -> Response:
        if gate.session_ok(request.cookies.get(UNLOCK_COOKIE)):
            return RedirectResponse(_safe_next(next), status_code=303)
        return unlock_page(request, next_url=_safe_next(next))

    @app.post(UNLOCK_PATH)
    async def unlock_submit(request: Request) -> Response:
        form = await read_form(request)
        next_url = _safe_next(str(form.get("next", "/")))
        secret = str(form.get("secret", ""))
        address = request.client.host if request.client is not None else ""
        try:
            # A KDF run: off the event loop, so the pages stay responsive meanwhile.
            token = await run_in_threadpool(gate.unlock, address, secret)
        except UnlockRefused as exc:
            return unlock_page(request, error=str(exc), next_url=next_url, status_code=401)
        response = RedirectResponse(next_url, status_code=303)
        response.set_cookie(UNLOCK_COOKIE, token, path="/", httponly=True, samesite="strict")
        return response

    @app.post(LOCK_PATH)
    async def lock_now(request: Request) -> Response:
        await read_form(request)
        gate.lock(request.cookies.get(UNLOCK_COOKIE))
        response = RedirectResponse(f"{UNLOCK_PATH}?locked=1", status_code=303)
        response.delete_cookie(UNLOCK_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    # ------------------------------------------------------------ my matters

    @app.get("/", response_class=HTMLResponse)
    async def matters(request: Request, page: int = 1, status: str = "", code: str = "") -> Response:
        if code.strip():
            # The agent types the lookup code from a villager's receipt: straight to that matter.
            try:
                matter_id = service.resolve_matter(code[:40])
            except UnknownMatterError:
                return not_found(request, f"本机没有查询码为 {_code_shown(code)} 的事项，请核对回执上的查询码。")
            return RedirectResponse(f"/matters/{matter_id}", status_code=303)
        page = max(1, min(page, 10_000))
        status = status if status in {s.value for s in MatterStatus} else ""
        states = service.store.list_matters(limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE, status=status or None)
        more = len(states) > PAGE_SIZE
        now = now_ms()
        shown = states[:PAGE_SIZE]
        received = service.store.receipt_times([s.filed_seq for s in shown])
        rows = [_matter_row(service, s, now, received.get(s.filed_seq)) for s in shown]
        return render(request, "matters.html", rows=rows, page=page, more=more, status=status,
                      statuses=[(s.value, s.label_zh) for s in MatterStatus], total=service.store.count_matters())

    # ------------------------------------------------------------ new request

    @app.get("/matters/new", response_class=HTMLResponse)
    async def new_request(request: Request) -> Response:
        return _render_new(request, values={}, problems=[])

    def _render_new(request: Request, *, values: dict[str, Any], problems: list[FieldProblem],
                    status_code: int = 200) -> HTMLResponse:
        values = {"request_id": str(uuid.uuid4()), **{k: v for k, v in values.items() if v or k != "request_id"}}
        by_field = {}
        for p in problems:
            by_field.setdefault(p.field, p.message)
        return render(request, "new_request.html", status_code=status_code, items=list(service.catalog), values=values,
                      problems=problems, errors=by_field, auth_methods=AUTH_METHOD_ZH,
                      brought=set(values.get("materials", [])), not_applicable=set(values.get("not_applicable", [])),
                      commitments=values.get("commitments", {}), today=service.clock.now().astimezone(SHANGHAI).date().isoformat())

    @app.post("/matters")
    async def file_request(request: Request) -> Response:
        form = await read_form(request)
        values = _request_values(form)
        try:
            evidence = await _evidence(form, values["authorization"])
            filed = service.file_request(RequestForm(
                applicant_name=values["name"], id_number=values["id_number"], phone=values["phone"],
                address=values["address"], catalog_code=values["matter"], materials_brought=values["materials"],
                commitments=values["commitments"], not_applicable=values["not_applicable"],
                authorization_method=values["authorization"], authorization_evidence=evidence,
                witness_name=values["witness_name"], witness_statement=values["witness_statement"],
                elderly_or_disabled=values["elderly_or_disabled"], door_to_door=values["door_to_door"],
                note=values["note"]), matter_id=_uuid_or_none(values["request_id"]))
        except FormError as exc:
            # The drawn signature is not sent back: a re-signed page is cheaper than echoing an image.
            return _render_new(request, values=values, problems=exc.problems, status_code=422)
        return RedirectResponse(f"/matters/{filed.matter_id}/receipt", status_code=303)

    @app.get("/api/assess")
    async def assess(matter: str = "", m: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies defaults)
                     na: Annotated[list[str], Query()] = []) -> Response:  # noqa: B006
        """The live checklist. Takes only the matter code and material ids: no personal data in the URL."""
        try:
            result = service.assess(matter, list(m or []), list(na or []))
        except FormError as exc:
            return JSONResponse({"ok": False, "error": exc.problems[0].message}, status_code=200)
        except (SharedError, TypeError) as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=200)
        return JSONResponse({"ok": True, **_assessment_json(result)})

    # ------------------------------------------------------------ one matter

    @app.get("/matters/{matter_ref}", response_class=HTMLResponse)
    async def matter_page(request: Request, matter_ref: str) -> Response:
        return _render_matter(request, service.resolve_matter(matter_ref), problems=[], values={})

    def _render_matter(request: Request, matter_id: str, *, problems: list[FieldProblem], values: dict[str, Any],
                       status_code: int = 200) -> HTMLResponse:
        state = service.store.matter_state(matter_id)
        item = service.catalog.item(state.catalog_code) if state.catalog_code in service.catalog else None
        applicant = service.applicant(matter_id)
        history = [_history_row(r, item) for r in service.store.ledger_records_for(matter_id)]
        # 不适用 materials are not missing: never ask the villager for them again.
        missing = [m for m in item.materials if m.id not in state.materials and m.id not in state.not_applicable] if item else []
        by_field = {}
        for p in problems:
            by_field.setdefault(p.field, p.message)
        received = service.store.receipt_times([state.filed_seq]).get(state.filed_seq)
        hop = village_hop(item, state, received_ms=received, now_ms=now_ms(), calendar=service.calendar) if item else None
        return render(request, "matter.html", status_code=status_code, state=state, item=item, applicant=applicant,
                      history=history, missing=missing, badge=deadline_badge(state, now_ms()), hop=hop,
                      materials=_material_rows(service, matter_id, state, item),
                      lookup_code=service.store.lookup_code_of(matter_id), errors=by_field, problems=problems,
                      values=values, material_names={m.id: m.name for m in item.materials} if item else {},
                      can=_allowed_actions(service, state))

    @app.post("/matters/{matter_ref}/materials")
    async def add_materials(request: Request, matter_ref: str) -> Response:
        form = await read_form(request)
        matter_id = service.resolve_matter(matter_ref)
        ids = [str(v) for v in form.getlist("material_ids")]
        note = str(form.get("note", ""))
        try:
            service.add_materials(matter_id, ids, note)
        except FormError as exc:
            return _render_matter(request, matter_id, problems=exc.problems, values={"note": note}, status_code=422)
        return RedirectResponse(f"/matters/{matter_id}?done=materials", status_code=303)

    @app.post("/matters/{matter_ref}/handover")
    async def hand_over(request: Request, matter_ref: str) -> Response:
        form = await read_form(request)
        matter_id = service.resolve_matter(matter_ref)
        summary = str(form.get("result_summary", ""))
        try:
            service.hand_over(matter_id, summary, [str(v) for v in form.getlist("materials_returned")])
        except FormError as exc:
            return _render_matter(request, matter_id, problems=exc.problems, values={"result_summary": summary},
                                  status_code=422)
        return RedirectResponse(f"/matters/{matter_id}/signoff?done=handover", status_code=303)

    @app.post("/matters/{matter_ref}/withdraw")
    async def withdraw(request: Request, matter_ref: str) -> Response:
        form = await read_form(request)
        matter_id = service.resolve_matter(matter_ref)
        reason = str(form.get("reason", ""))
        try:
            service.withdraw(matter_id, reason)
        except FormError as exc:
            return _render_matter(request, matter_id, problems=exc.problems, values={"reason": reason}, status_code=422)
        return RedirectResponse(f"/matters/{matter_id}?done=withdraw", status_code=303)

    @app.get("/matters/{matter_ref}/receipt", response_class=HTMLResponse)
    async def receipt(request: Request, matter_ref: str) -> Response:
        matter_id = service.resolve_matter(matter_ref)
        view = build_receipt(service, matter_id)
        state = service.store.matter_state(matter_id)
        return render(request, "receipt.html", r=view, state=state)

    # ------------------------------------------------------------ numbered documents (printed from this browser)

    documents = VillageDocuments(service)

    @app.get("/matters/{matter_ref}/documents/{what}")
    async def print_document(request: Request, matter_ref: str, what: str) -> Response:
        """The first print numbers and signs the document; every later print is the same bytes."""
        from shared.documents.adapters.web import document_url
        from shared.documents.errors import DocumentError

        matter_id = service.resolve_matter(matter_ref)
        try:
            doc = await run_in_threadpool(documents.issue_or_load, what, matter_id)
        except DocumentError as exc:
            return message(request, str(exc), 409)
        return RedirectResponse(document_url(doc.number), status_code=303)

    @app.get("/documents/{number}", response_class=HTMLResponse)
    async def stored_document(request: Request, number: str) -> Response:
        from shared.documents.errors import DocumentNotFound

        try:
            doc = documents.load(number)
        except DocumentNotFound as exc:
            return message(request, str(exc), 404)
        return Response(doc.html.encode("utf-8"), media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    @app.get("/document-static/{name}")
    async def document_asset(name: str) -> Response:
        from shared.documents.adapters.web import ASSETS, TEMPLATES

        if name not in ASSETS:
            return Response("找不到该文件", status_code=404, media_type="text/plain; charset=utf-8")
        return Response((TEMPLATES / name).read_bytes(), media_type=ASSETS[name])

    # ------------------------------------------------------------ sign-off

    @app.get("/matters/{matter_ref}/signoff", response_class=HTMLResponse)
    async def signoff_page(request: Request, matter_ref: str) -> Response:
        return _render_signoff(request, service.resolve_matter(matter_ref), values={}, problems=[])

    def _render_signoff(request: Request, matter_id: str, *, values: dict[str, str], problems: list[FieldProblem],
                        status_code: int = 200) -> HTMLResponse:
        state = service.store.matter_state(matter_id)
        item = service.catalog.item(state.catalog_code) if state.catalog_code in service.catalog else None
        by_field = {}
        for p in problems:
            by_field.setdefault(p.field, p.message)
        return render(request, "signoff.html", status_code=status_code, state=state, item=item,
                      applicant=service.applicant(matter_id), ratings=RATING_CHOICES, values=values,
                      errors=by_field, problems=problems, confirm_methods=CONFIRM_METHOD_ZH,
                      lookup_code=service.store.lookup_code_of(matter_id))

    @app.post("/matters/{matter_ref}/signoff")
    async def signoff(request: Request, matter_ref: str) -> Response:
        form = await read_form(request)
        matter_id = service.resolve_matter(matter_ref)
        values = {k: str(form.get(k, "")) for k in ("rating", "comment", "method", "witness_name", "witness_statement")}
        try:
            method = values["method"] or ("drawn_signature" if form.get("signature_data") else "")
            if method == "drawn_signature":
                evidence = _data_url_png(str(form.get("signature_data", "")), "signature", "签收确认")
            elif method in ("photo_of_form", "fingerprint"):
                evidence = await _upload(form, "evidence_file")
            else:
                evidence = b""
            service.sign_off(matter_id, values["rating"], values["comment"], confirmation=Confirmation(
                method, evidence, values["witness_name"], values["witness_statement"]))
        except FormError as exc:
            return _render_signoff(request, matter_id, values=values, problems=exc.problems, status_code=422)
        return RedirectResponse(f"/matters/{matter_id}?done=signoff", status_code=303)

    # ------------------------------------------------------------ appointments

    @app.get("/appointments", response_class=HTMLResponse)
    async def appointments(request: Request, matter_id: str = "") -> Response:
        # Opened from a matter page or a forfeited row ("改约"): the matter is filled in already, by its lookup code.
        prefill = {}
        if matter_id and service.store.has_matter(matter_id):
            prefill = {"matter": service.store.lookup_code_of(matter_id) or ""}
        return _render_appointments(request, values=prefill, problems=[])

    def _render_appointments(request: Request, *, values: dict[str, str], problems: list[FieldProblem],
                             status_code: int = 200, row_values: dict[str, str] | None = None,
                             row_problems: list[FieldProblem] | None = None, row_id: str = "") -> HTMLResponse:
        now = now_ms()
        rows = []
        for row in service.store.appointments():
            status = AppointmentStatus(row.status)
            late = domain.is_late(row.scheduled_at_ms, now)
            rows.append({"id": row.appointment_id, "at": row.scheduled_at_ms, "place": PLACE_ZH_BY_ENUM.get(row.place, "其他"),
                         "purpose": row.purpose, "status": status, "status_zh": status.label_zh,
                         "matter_id": row.matter_id or "", "late": late,
                         "overdue": status is AppointmentStatus.SCHEDULED and late,
                         "matter_code": service.store.lookup_code_of(row.matter_id) if row.matter_id else ""})
        by_field = {}
        for p in problems:
            by_field.setdefault(p.field, p.message)
        return render(request, "appointments.html", status_code=status_code, rows=rows, places=PLACE_ZH,
                      values=values, errors=by_field, problems=problems, contact_methods=domain.CONTACT_METHODS,
                      row_id=row_id, row_values=row_values or {}, row_problems=row_problems or [],
                      now_local=dt.datetime.fromtimestamp(now / 1000, SHANGHAI).strftime("%Y-%m-%d %H:%M"),
                      overdue_count=sum(1 for r in rows if r["overdue"]),
                      rebook_count=sum(1 for r in rows if r["status"] is AppointmentStatus.FORFEITED))

    @app.post("/appointments")
    async def make_appointment(request: Request) -> Response:
        form = await read_form(request)
        values = {k: str(form.get(k, "")) for k in ("scheduled_at", "place", "purpose", "matter", "place_detail")}
        try:
            try:
                at = dt.datetime.fromisoformat(values["scheduled_at"].strip())
            except ValueError:
                raise FormError([FieldProblem("scheduled_at", "预约时间", "请选择预约日期和时间")]) from None
            at = at if at.tzinfo else at.replace(tzinfo=SHANGHAI)
            matter_id = ""
            if values["matter"].strip():
                try:
                    matter_id = service.resolve_matter(values["matter"][:40])
                except UnknownMatterError:
                    raise FormError([FieldProblem("matter", "相关事项", "本机没有这个查询码的事项，请核对回执上的查询码")]) from None
            service.make_appointment(scheduled_at=at, place=values["place"], purpose=values["purpose"],
                                     matter_id=matter_id, place_detail=values["place_detail"])
        except FormError as exc:
            return _render_appointments(request, values=values, problems=exc.problems, status_code=422)
        return RedirectResponse("/appointments?done=appointment", status_code=303)

    @app.post("/appointments/{appointment_id}/forfeit")
    async def forfeit(request: Request, appointment_id: str) -> Response:
        """预约服务制度 第七条: forfeited only with the failed contact attempt (when, how, outcome)."""
        form = await read_form(request)
        values = {k: str(form.get(k, ""))[:200] for k in ("contact_at", "method", "outcome")}
        service.store.appointment_row(appointment_id)   # unknown: the not-found page
        try:
            contact_at = None
            if values["contact_at"].strip():
                try:
                    contact_at = dt.datetime.fromisoformat(values["contact_at"].strip())
                except ValueError:
                    raise FormError([FieldProblem("contact", "联系时间", "联系时间格式应为 年-月-日 时:分，如 2026-12-01 10:15")]) from None
                contact_at = contact_at if contact_at.tzinfo else contact_at.replace(tzinfo=SHANGHAI)
            service.forfeit_appointment(appointment_id, contact_at=contact_at, method=values["method"], outcome=values["outcome"])
        except FormError as exc:
            return _render_appointments(request, values={}, problems=[], status_code=422, row_id=appointment_id,
                                        row_values=values, row_problems=exc.problems)
        return RedirectResponse("/appointments?done=forfeit", status_code=303)

    @app.post("/appointments/{appointment_id}/visit")
    async def visit(request: Request, appointment_id: str) -> Response:
        form = await read_form(request)
        values = {k: str(form.get(k, ""))[:200] for k in ("outcome", "late_reason")}
        row = service.store.appointment_row(appointment_id)
        place = {v: k for k, v in PLACES.items()}.get(row.place, "applicant_home")
        try:
            service.record_visit(appointment_id=appointment_id, matter_id=row.matter_id or "", place=place,
                                 outcome=values["outcome"], late_reason=values["late_reason"])
        except FormError as exc:
            return _render_appointments(request, values={}, problems=[], status_code=422, row_id=appointment_id,
                                        row_values=values, row_problems=exc.problems)
        return RedirectResponse("/appointments?done=visit", status_code=303)

    # ------------------------------------------------------------ sync

    @app.get("/sync", response_class=HTMLResponse)
    async def sync_page(request: Request) -> Response:
        return render(request, "sync.html", sync=sync_panel(service, sync_status), matters=service.store.count_matters(),
                      township=service.config.township_name)

    # ------------------------------------------------------------ 我的评价 (the agent's own 好差评 figures)

    @app.get("/my-figures", response_class=HTMLResponse)
    async def my_figures_page(request: Request) -> Response:
        from village_agent.my_figures import my_figures

        return render(request, "my_figures.html", figures=my_figures(service.store, service.catalog),
                      township=service.config.township_name)

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    # Added last = outermost: the Host/Origin/size checks run before the unlock check.
    app.add_middleware(UnlockGuard, gate=gate)
    app.add_middleware(LocalGuard, allowed_hosts=allowed_hosts)
    return app


class _Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


# ---------------------------------------------------------------------------- form helpers


def _request_values(form: FormData) -> dict[str, Any]:
    """What the agent typed, kept as typed so a refused form comes back filled in."""
    text = {k: str(form.get(k, "")) for k in ("name", "id_number", "phone", "address", "matter", "authorization",
                                              "witness_name", "witness_statement", "note", "request_id")}
    commitments = {}
    for key, value in form.multi_items():
        if key.startswith("commit:") and isinstance(value, str) and value.strip():
            commitments[key[len("commit:"):]] = value.strip()
    return {
        **text,
        "materials": [str(v) for v in form.getlist("materials")],
        "not_applicable": [str(v) for v in form.getlist("not_applicable")],
        "commitments": commitments,
        "elderly_or_disabled": form.get("elderly_or_disabled") == "1",
        "door_to_door": form.get("door_to_door") == "1",
    }


def _uuid_or_none(text: str) -> str | None:
    """The form's one-time id makes a double-clicked submit file once; anything else is ignored."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        return None


async def _evidence(form: FormData, method: str) -> bytes:
    if method == "drawn_signature":
        return _data_url_png(str(form.get("signature_data", "")), "authorization_evidence", "委托书")
    if method in ("photo_of_form", "fingerprint"):
        return await _upload(form, "authorization_file")
    return b""


async def _upload(form: FormData, name: str) -> bytes:
    """An uploaded photo, read only one byte past the bound (the service refuses what is too big)."""
    upload = form.get(name)
    if isinstance(upload, UploadFile):
        return await upload.read(MAX_EVIDENCE_BYTES + 1)
    return b""


def _data_url_png(value: str, field: str, label: str) -> bytes:
    """The canvas sends `data:image/png;base64,…`; the service checks it really is an image."""
    value = value.strip()
    if not value:
        return b""
    prefix = "data:image/png;base64,"
    if not value.startswith(prefix):
        raise FormError([FieldProblem(field, label, "签名图片无效，请重新签名")])
    try:
        return base64.b64decode(value[len(prefix):], validate=True)
    except (binascii.Error, ValueError):
        raise FormError([FieldProblem(field, label, "签名图片无效，请重新签名")]) from None


def _assessment_json(a: MaterialsAssessment) -> dict[str, Any]:
    return {
        "outcome": a.outcome.value, "outcome_zh": a.outcome.label_zh, "kind_zh": a.suggested_kind.label_zh,
        "missing": [{"id": m.id, "name": m.name, "main": m in a.missing_main, "tolerated": m.tolerated_missing}
                    for m in a.missing],
        "commit_ids": [m.id for m in a.missing_auxiliary] if a.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE else [],
        "return_reason": a.return_reason_zh or "",
        "clock_waits": a.clock_waits_for_materials,
    }


def _matter_row(service: AgentService, state: MatterState, now_ms: int, received_ms: int | None) -> dict[str, Any]:
    item = service.catalog.item(state.catalog_code) if state.catalog_code in service.catalog else None
    try:
        applicant = service.applicant(state.matter_id)
    except AgentError:
        applicant = None
    hop = village_hop(item, state, received_ms=received_ms, now_ms=now_ms, calendar=service.calendar) if item else None
    return {"id": state.matter_id, "matter_name": item.name if item else "（目录中已无此事项）",
            "status_zh": state.status.label_zh, "status": state.status.value,
            "applicant": applicant.name if applicant else "—", "id_masked": state.id_masked,
            "code": service.store.lookup_code_of(state.matter_id),
            "filed": state.filed_claimed_ms, "badge": deadline_badge(state, now_ms), "supervised": state.supervised,
            "hop": hop, "row_css": _row_css(deadline_badge(state, now_ms), hop)}


def _row_css(badge: DeadlineBadge, hop: VillageHop | None) -> str:
    """The row's colour: the worse of the township's clock and the village's own hop."""
    order = ["untimed", "done", "on-time", "warning", "overdue"]
    hop_css = "overdue" if hop is not None and hop.css == "overdue" else (hop.css if hop is not None else "untimed")
    hop_css = hop_css if hop_css in order else "untimed"
    worst = max((badge.css, hop_css), key=order.index)
    return "untimed" if worst == "done" else worst


def _material_rows(service: AgentService, matter_id: str, state: MatterState, item: Any) -> list[dict[str, str]]:
    """Each material with what is recorded for it now: brought, 不适用, promised by a date, or missing."""
    if item is None:
        return []
    dates = {t.material_id: t.supply_by_date for t in service.store.filing_record(matter_id).request_filed.tolerated_missing}
    rows = []
    for m in item.materials:
        main = item.is_main(m.id)
        kind = "主要材料" if main else ("辅助材料，可容缺" if m.tolerated_missing else "辅助材料")
        if m.id in state.materials:
            status, css = "已提交", "ok"
        elif m.id in state.not_applicable:
            status, css = "不适用", "na"
        elif m.id in dates and m.id in state.tolerated_missing:
            status, css = f"暂缺，承诺于 {dates[m.id]} 前补交", "warn"
        elif main:
            status, css = "缺少（主要材料）", "bad"
        else:
            status, css = "暂缺", "warn"
        rows.append({"name": m.name, "kind": kind, "condition": m.condition, "status": status, "css": css})
    return rows


CONFIRM_ZH_BY_ENUM = {
    records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE: "群众签名",
    records_pb2.AUTHORIZATION_METHOD_PHOTO_OF_FORM: "签收单照片",
    records_pb2.AUTHORIZATION_METHOD_FINGERPRINT: "按手印",
    records_pb2.AUTHORIZATION_METHOD_WITNESS: "见证人证明",
}


def _history_row(record: records_pb2.Record, item: Any = None) -> dict[str, Any]:
    kind = record.WhichOneof("body") or ""
    names = {m.id: m.name for m in item.materials} if item is not None else {}
    detail = ""
    if kind == "materials_added":
        added = [names.get(m, "") for m in record.materials_added.material_ids]
        detail = "、".join(n for n in added if n) or f"{len(added)} 份材料"
    elif kind == "withdrawn":
        detail = record.withdrawn.reason
    elif kind == "result_handed_over":
        detail = record.result_handed_over.result_summary
    elif kind == "signed_off":
        how = CONFIRM_ZH_BY_ENUM.get(record.signed_off.confirmation_method,
                                     "群众签名" if record.signed_off.sealed_signature else "")
        detail = "，".join(x for x in (RATING_ZH.get(record.signed_off.rating, ""), how) if x)
    elif kind == "result_ready":
        detail = record.result_ready.result_summary
    elif kind == "status_update":
        detail = record.status_update.message
    elif kind == "supervision_notice":
        detail = record.supervision_notice.message
    elif kind == "document_issued":
        from shared.documents.kinds import DocumentKind

        known = {k.value: k.title_zh for k in DocumentKind}
        detail = f"{known.get(record.document_issued.kind, '文书')} {record.document_issued.number}"
    return {"at": record.header.claimed_time_ms, "kind_zh": KIND_ZH.get(kind, "其他记录"), "detail": detail,
            "from_township": kind not in ("request_filed", "materials_added", "withdrawn", "result_handed_over",
                                          "signed_off", "follow_up_called", "appointment_made", "visit_recorded",
                                          "appointment_forfeited", "document_issued")}


def _code_shown(code: str) -> str:
    """What the agent typed as a lookup code, fit to show back (letters, digits and the dash only)."""
    return "".join(ch for ch in code.strip().upper()[:12] if ch.isalnum() or ch == "-") or "（空）"


def _allowed_actions(service: AgentService, state: MatterState) -> dict[str, bool]:
    from shared.domain.catalog import Tier
    from village_agent import domain

    def ok(check: Callable[[], None]) -> bool:
        try:
            check()
        except TransitionError:
            return False
        return True

    decided_here = state.catalog_code in service.catalog and service.catalog.item(state.catalog_code).decided_by is Tier.VILLAGE
    return {
        "materials": ok(lambda: domain.check_can_add_materials(state)),
        "withdraw": ok(lambda: domain.check_can_withdraw(state)),
        "handover": ok(lambda: domain.check_can_hand_over(state, decided_here)),
        "signoff": ok(lambda: domain.check_can_sign_off(state)),
    }


# ---------------------------------------------------------------------------- serving


def serve(service: AgentService, host: str = "127.0.0.1", port: int = 8631, *,
          sync_status: SyncStatus | None = None,
          extra_hosts: tuple[str, ...] = (), idle_minutes: int | None = None) -> int:
    """Run the UI until Ctrl-C. Access log off: URLs carry no personal data, but nothing is gained by logging them.
    The Host allow-list is what the listen address allows (loopback names on loopback) plus `extra_hosts`."""
    import uvicorn

    hosts = WebSecurity.for_address(f"{host}:{port}", extra_hosts=extra_hosts).allowed_hosts
    gate = default_unlock_gate(service, UnlockPolicy(idle_timeout=dt.timedelta(minutes=idle_minutes))
                               if idle_minutes is not None else None)
    app = create_app(service, sync_status=sync_status, allowed_hosts=hosts, unlock=gate)
    config = uvicorn.Config(app, host=host.strip("[]"), port=port, **uvicorn_options())
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    print(f"村代办员网页界面已启动：http://{shown}:{port}/  （按 Ctrl-C 退出）", flush=True)
    if not is_loopback_address(host):
        print("注意：网页监听的不是本机地址，局域网中的其他电脑也能打开解锁页；网页不加密，口令和群众信息会以明文在局域网传输。"
              "如无必要，请去掉 --host，只在本机使用。", flush=True)
    print(f"打开后请输入代办员口令{'或解锁 PIN' if gate.pin is not None and gate.pin.is_set() else ''}解锁；"
          f"{int(gate.policy.idle_timeout.total_seconds() // 60)} 分钟无操作自动锁定。", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        service.store.close()
    return 0
