"""What every page of the village UI shares: the `Pages` helper (rendering with the common frame,
the CSRF-checked form reader, the message and not-found pages), the error pages, and the parsing of
what the agent typed or drew (request values, evidence images, the one-time request id).

The page groups (`unlock_pages`, `matters`, `documents`, `signoff`, `appointments`, `status`) each
build one router from a `Pages`; `village_agent.ui.server.create_app` only assembles them.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from shared.calendar import calendar_warning_zh
from shared.clock import from_unix_ms, to_unix_ms
from village_agent.errors import FieldProblem, FormError, StoreError, TransitionError, UnknownMatterError
from village_agent.notice import authorization_text
from village_agent.services import MAX_EVIDENCE_BYTES, SHANGHAI, AgentService
from village_agent.ui.guards import MAX_BODY_BYTES
from village_agent.ui.reachability import SyncStatus
from village_agent.ui.unlock import UnlockGate

__all__ = ["Pages", "install_error_pages", "jinja_environment", "errors_by_field", "request_values",
           "uuid_or_none", "evidence", "upload", "data_url_png", "CSRF_FIELD", "DONE_ZH"]

# The UI's one logger keeps the name operators filter on, whichever page module logs.
log = logging.getLogger("village_agent.ui")

HERE = Path(__file__).parent
CSRF_FIELD = "csrf_token"
NOT_FOUND_ZH = "没有找到这个页面。"
UNKNOWN_MATTER_ZH = "本机没有这个事项：链接可能已失效，或事项登记在另一台电脑上。请从“我的事项”中查找，或输入回执上的查询码。"
# Short notices after a redirect; the query string carries only this key, never data.
DONE_ZH = {
    "materials": "已登记补充材料。", "handover": "已交付办理结果，请群众签收评价。", "withdraw": "事项已撤回。",
    "signoff": "群众已签收并评价，本次代办服务结束。", "appointment": "已登记预约。", "visit": "已登记上门服务。",
    "forfeit": "已登记联系情况，预约已标记为失约，请与群众另约时间。",
}


def jinja_environment() -> jinja2.Environment:
    # Autoescape: names and addresses typed by villagers end up in these pages.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["ms_local"] = lambda ms: f"{from_unix_ms(ms).astimezone(SHANGHAI):%Y-%m-%d %H:%M}" if ms else "—"
    # The 委托书's words, shown before the villager signs (the printed 委托书 carries the same).
    env.globals["authorization_text"] = authorization_text
    return env


class _Refused(Exception):
    """A form that cannot be read or lacks this process's CSRF token: answered with a message page."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass
class Pages:
    """What a page group needs: the open service, the templates, this process's CSRF token, the
    unlock gate and the relay's reachability probe, with the render/form helpers over them."""

    service: AgentService
    env: jinja2.Environment
    csrf_token: str
    gate: UnlockGate
    sync_status: SyncStatus | None = None

    def now_ms(self) -> int:
        return to_unix_ms(self.service.clock.now())

    def calendar_warning(self) -> str:
        # Deadlines shown here reach a few months ahead; warn while any of those years is unconfirmed.
        today = self.service.clock.now().astimezone(SHANGHAI).date()
        return calendar_warning_zh(self.service.calendar, today, today + dt.timedelta(days=120)) or ""

    def render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        done = request.query_params.get("done", "")
        service = self.service
        base = {"csrf_token": self.csrf_token, "csrf_field": CSRF_FIELD, "nav_waiting": service.store.outbox_size(),
                "notice": DONE_ZH.get(done, ""), "village_name": service.config.village_name,
                "agent_name": service.config.agent_name, "path": request.url.path,
                "calendar_warning": self.calendar_warning()}
        html = self.env.get_template(name).render(**base, **context)
        return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})

    def message(self, request: Request, text: str, status_code: int) -> HTMLResponse:
        return self.render(request, "message.html", status_code=status_code, message=text)

    def not_found(self, request: Request, text: str) -> HTMLResponse:
        return self.render(request, "not_found.html", status_code=404, message=text)

    async def read_form(self, request: Request) -> FormData:
        """The posted form, refused unless it carries this process's CSRF token."""
        try:
            form = await request.form(max_files=2, max_fields=200, max_part_size=MAX_BODY_BYTES)
        except MultiPartException as exc:
            raise _Refused(400, "表单无法解析，请重新提交。") from exc
        token = form.get(CSRF_FIELD)
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.csrf_token.encode()):
            raise _Refused(403, "表单已过期或来源不明（缺少安全校验码），请返回重新打开页面后再提交。")
        return form


def install_error_pages(app: FastAPI, pages: Pages) -> None:
    """Every refusal and failure as a Chinese page; never an id, an English key or a raw error."""

    @app.exception_handler(_Refused)
    async def on_refused(request: Request, exc: _Refused) -> Response:
        return pages.message(request, exc.text, exc.status)

    @app.exception_handler(UnknownMatterError)
    async def on_unknown(request: Request, exc: UnknownMatterError) -> Response:
        # Never echo the link's id back: the agent knows matters by lookup code and title.
        return pages.not_found(request, UNKNOWN_MATTER_ZH)

    @app.exception_handler(TransitionError)
    async def on_transition(request: Request, exc: TransitionError) -> Response:
        return pages.message(request, str(exc), 409)

    @app.exception_handler(StoreError)
    async def on_store(request: Request, exc: StoreError) -> Response:
        return pages.message(request, str(exc), 503)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return pages.not_found(request, NOT_FOUND_ZH)
        text = {405: "不支持这种操作方式。"}.get(exc.status_code, "请求无法处理。")
        return pages.message(request, text, exc.status_code)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> Response:
        # The type only: an exception's message may quote what was typed.
        log.error("page failed: %s %s", request.url.path, type(exc).__name__)
        return pages.message(request, "出现内部错误，本次操作可能没有保存。请返回检查后重试。", 500)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        return pages.message(request, "请求参数不正确。", 400)


# ---------------------------------------------------------------------------- form helpers


def errors_by_field(problems: list[FieldProblem]) -> dict[str, str]:
    """The first problem of each field, shown beside it."""
    by_field: dict[str, str] = {}
    for p in problems:
        by_field.setdefault(p.field, p.message)
    return by_field


def request_values(form: FormData) -> dict[str, Any]:
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


def uuid_or_none(text: str) -> str | None:
    """The form's one-time id makes a double-clicked submit file once; anything else is ignored."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        return None


async def evidence(form: FormData, method: str) -> bytes:
    """The 委托书's evidence as the chosen method delivers it: a drawn signature or a photo."""
    if method == "drawn_signature":
        return data_url_png(str(form.get("signature_data", "")), "authorization_evidence", "委托书")
    if method in ("photo_of_form", "fingerprint"):
        return await upload(form, "authorization_file")
    return b""


async def upload(form: FormData, name: str) -> bytes:
    """An uploaded photo, read only one byte past the bound (the service refuses what is too big)."""
    file = form.get(name)
    if isinstance(file, UploadFile):
        return await file.read(MAX_EVIDENCE_BYTES + 1)
    return b""


def data_url_png(value: str, field: str, label: str) -> bytes:
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
