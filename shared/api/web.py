"""The JSON API's FastAPI side that both tiers share: the app factory, bearer authentication with the
console's role rule, and one error body for every refusal.

Every error answers `{"code": "...", "message": "..."}`: `code` is for programs (stable, English),
`message` is Chinese for the person who reads it and never names an internal identifier. Validation
problems add `fields`, one entry per field with a Chinese `problem`.

Authentication is the `Authorization: Bearer <token>` header and nothing else. The API is mounted in
the console's web server, where a browser may also send the console's session cookie: the API never
looks at it, so a page on another site cannot make a signed-in browser act through the API, and no
CSRF token is needed for bearer calls.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.api.errors import ApiError, Forbidden, NotAuthenticated
from shared.api.tokens import ApiCaller, ApiTokens
from shared.console.errors import ConsoleHTTPError, RateLimitedError
from shared.console.ratelimit import RateLimiter
from shared.console.web import api_error_code, client_address
from shared.domain.handling import Role

__all__ = ["create_api_app", "caller", "require", "ErrorBody", "FieldProblem", "ERROR_RESPONSES", "ErrorMapping",
           "scrub"]

log = logging.getLogger(__name__)

# (exception class, HTTP status, code): how a tier's service errors become API errors. Looked up by the
# exception's class hierarchy, most specific first, like any exception handler.
ErrorMapping = tuple[type[Exception], int, str]

_BEARER = HTTPBearer(auto_error=False, scheme_name="StaffToken",
                     description="工作人员接口令牌：由系统管理员在服务器上用 `staff token create 登录名` 创建，只显示一次。"
                                 "请求头写作 `Authorization: Bearer <令牌>`。")
# Ids are for programs: a message a person may read must not carry one, even one a service let slip.
_IDS = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b|\b[0-9a-fA-F]{16,}\b")
_INTERNAL_ZH = "服务器内部错误，操作可能未完成；请稍后查询后再试，或联系系统管理员。"

_PROBLEM_ZH = {
    "missing": "缺少此项",
    "extra_forbidden": "不认识此项",
    "enum": "不是允许的取值",
    "literal_error": "不是允许的取值",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "string_type": "应为文字",
    "string_too_long": "内容过长",
    "string_too_short": "不能为空",
    "list_type": "应为数组",
    "too_long": "条目过多",
    "greater_than": "数值过小",
    "greater_than_equal": "数值过小",
    "less_than": "数值过大",
    "less_than_equal": "数值过大",
    "json_invalid": "不是有效的 JSON",
    "model_attributes_type": "应为 JSON 对象",
    "dict_type": "应为 JSON 对象",
}


class FieldProblem(BaseModel):
    field: str = Field(description="出错的字段（路径以点分隔，如 `promise.amount`）")
    problem: str = Field(description="问题说明（中文）")


class ErrorBody(BaseModel):
    """错误应答：`code` 供程序判断，`message` 为中文说明。"""

    code: str = Field(description="机器可读的错误代码，如 `token_expired`、`forbidden`、`version_conflict`")
    message: str = Field(description="中文错误说明，可直接展示给工作人员")
    fields: list[FieldProblem] | None = Field(default=None, description="请求内容校验失败时，逐项列出的问题")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "未附接口令牌，或令牌无效、已过期、已吊销，或账号已停用"},
    403: {"model": ErrorBody, "description": "令牌所属工作人员的身份无权执行此操作（与网页控制台的规则相同）"},
    404: {"model": ErrorBody, "description": "找不到所指的办件、密钥或通知"},
    409: {"model": ErrorBody, "description": "办件刚被他人修改（版本号不符），或当前状态不允许此操作"},
    422: {"model": ErrorBody, "description": "请求内容有误，或办理规则不允许此操作"},
    429: {"model": ErrorBody, "description": "同一地址无效令牌的请求过于频繁，请按 Retry-After 头所示的秒数稍后再试"},
}


def scrub(message: str) -> str:
    """A message with any id-like text taken out (a person reads it)."""
    return re.sub(r"\s{2,}", " ", _IDS.sub("", message)).strip() or "操作未成功"


def _error(status: int, code: str, message: str, fields: list[dict[str, str]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": scrub(message)}
    if fields is not None:
        body["fields"] = fields
    return JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})


def caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_BEARER)) -> ApiCaller:
    """FastAPI dependency: the staff member whose bearer token this call carries, or 401; 429 once one
    client address has sent too many tokens that are not live (see `create_api_app`)."""
    if credentials is None:
        raise NotAuthenticated("token_missing", "请在请求头 Authorization 中以 Bearer 方式附上接口令牌")
    tokens: ApiTokens = request.app.state.api_tokens
    try:
        return tokens.resolve(credentials.credentials)
    except NotAuthenticated:
        limiter: RateLimiter | None = request.app.state.api_failures
        if limiter is not None:
            decision = limiter.check(client_address(request))
            if not decision.allowed:
                raise RateLimitedError(int(limiter.retry_after_header(decision))) from None
        raise


def require(*roles: Role) -> Callable[..., ApiCaller]:
    """FastAPI dependency factory: the console's `require_role` for bearer calls (same roles, same words)."""
    if not roles:
        raise ValueError("require needs at least one role")
    allowed = frozenset(roles)
    labels = "或".join(r.label_zh for r in roles)

    def dependency(who: ApiCaller = Depends(caller)) -> ApiCaller:
        if who.role not in allowed:
            raise Forbidden("forbidden", f"您没有权限执行此操作：此操作仅限{labels}，您当前的身份是{who.role.label_zh}。")
        return who

    dependency.__name__ = f"require_{'_'.join(r.value for r in roles)}"
    return dependency


def _service_error(status: int, code: str) -> Callable[[Request, Exception], Any]:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return _error(status, code, str(exc) or "操作未成功")

    return handler


class _NoStore:
    """Every API answer is about live cases: no cache on the way may keep it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, wrapped if scope["type"] == "http" else send)


def create_api_app(*, title: str, description: str, tokens: ApiTokens, errors: Sequence[ErrorMapping] = (),
                   tags: Sequence[dict[str, str]] = (), version: str = "1.0",
                   failure_limiter: RateLimiter | None | bool = True) -> FastAPI:
    """A FastAPI app for a tier's JSON API, to be mounted at `/api` in its console server; its OpenAPI
    document is at `/api/openapi.json`. `errors` maps the tier's service errors to API errors.

    `failure_limiter` (default: 20 at once per client address, one more every 3 s, as the console's
    sign-in) counts calls whose token is not live: beyond it they get 429 until it refills. A live token
    is never refused by it, so one script with a stale token cannot shut out its office's other callers;
    guessing is hopeless anyway (256-bit tokens), the limit keeps a flood of bad tokens off the database."""
    api = FastAPI(title=title, description=description, version=version, openapi_url="/openapi.json",
                  docs_url=None, redoc_url=None, openapi_tags=list(tags), responses=ERROR_RESPONSES)
    api.state.api_tokens = tokens
    if failure_limiter is True:
        failure_limiter = RateLimiter(capacity=20, refill_per_second=1 / 3, clock=tokens.clock)
    # Not `or None`: an empty RateLimiter has len() 0, so it is falsy.
    api.state.api_failures = failure_limiter if isinstance(failure_limiter, RateLimiter) else None

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _error(exc.status_code, exc.code, exc.message)

    api.add_exception_handler(ApiError, api_error)

    async def console_refusal(request: Request, exc: Exception) -> JSONResponse:
        # The console's own refusals (a rate limit above all) raised inside an API route or dependency.
        assert isinstance(exc, ConsoleHTTPError)
        response = _error(exc.status_code, api_error_code(exc), exc.message)
        if isinstance(exc, RateLimitedError):
            response.headers["retry-after"] = str(exc.retry_after_s)
        return response

    api.add_exception_handler(ConsoleHTTPError, console_refusal)

    for exc_class, status, code in errors:
        api.add_exception_handler(exc_class, _service_error(status, code))

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        fields = []
        for problem in exc.errors():
            where = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("body", "query", "path"))
            kind = str(problem.get("type", ""))
            fields.append({"field": where or "（请求体）", "problem": _PROBLEM_ZH.get(kind, "取值有误")})
        return _error(422, "invalid_request", f"请求内容有误（{len(fields)} 处），请按接口文档核对后重试", fields)

    api.add_exception_handler(RequestValidationError, invalid)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        status = int(getattr(exc, "status_code", 404))
        code, message = {404: ("not_found", "没有这个接口地址，请核对接口文档"),
                         405: ("method_not_allowed", "该接口地址不支持这种请求方法")}.get(
            status, ("bad_request", "请求无法处理，请核对后重试"))
        return _error(status, code, message)

    api.add_exception_handler(StarletteHTTPException, http_error)

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("API call %s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal_error", _INTERNAL_ZH)

    api.add_exception_handler(Exception, internal)
    api.add_middleware(_NoStore)
    return api
