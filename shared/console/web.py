"""FastAPI integration: the login and logout routes, the session/CSRF/Origin middleware, the role
and rate-limit dependencies, and the shared templates and stylesheet.

Deny by default: once `install_console` has run, every path needs a signed-in staff member except
`/login`, the console's static files and the `public_paths` the caller names (e.g. the public status
lookup). A forgotten dependency therefore never exposes a page; the dependencies add the role check
and hand the handler its `ConsoleSession`.

CSRF: every POST/PUT/PATCH/DELETE on a signed-in path must carry the session's token, as the form
field `csrf_token` or the header `X-CSRF-Token`. The login form, which has no session yet, uses a
double-submit cookie instead. Any request whose `Origin` header names another site is refused.
"""
from __future__ import annotations

import contextvars
import functools
import hmac
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.console.auth import ConsoleAuth, ConsoleSession
from shared.console.errors import (
    ConsoleHTTPError,
    CsrfError,
    ForbiddenError,
    LoginRefusedError,
    NotSignedInError,
    OriginError,
    RateLimitedError,
    RequestTooLargeError,
)
from shared.console.guard import SECURITY_HEADERS
from shared.console.ratelimit import RateLimiter
from shared.domain.handling import Role

__all__ = [
    "SESSION_COOKIE", "LOGIN_CSRF_COOKIE", "CSRF_FIELD", "CSRF_HEADER", "STATIC_PATH", "STATIC_ROUTE_NAME",
    "TEMPLATES_DIR", "STATIC_DIR", "ConsoleSettings", "Console", "install_console", "current_staff",
    "require_role", "rate_limit", "client_address", "make_jinja_env", "make_templates", "mount_console_static",
    "console_context", "api_error_code",
]

SESSION_COOKIE = "qc_console_session"
LOGIN_CSRF_COOKIE = "qc_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
STATIC_PATH = "/console-static"
STATIC_ROUTE_NAME = "console_static"
TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
# The session of the request being handled, for `Console.flash` (set by `ConsoleMiddleware`;
# FastAPI copies the context into the thread that runs a plain `def` handler).
_CURRENT_SESSION: contextvars.ContextVar[ConsoleSession | None] = contextvars.ContextVar("console_session", default=None)
# A flash waits this long for the page after the redirect, then is dropped.
FLASH_TTL_S = 300.0
_MAX_FLASHES = 10_000
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


# ---------------------------------------------------------------------- templates and static files


def make_jinja_env(templates_dir: Path | str | Sequence[Path | str] | None = None) -> jinja2.Environment:
    """A Jinja2 environment that looks in the caller's template folder(s) first, then in the console's
    own (`base.html`, `login.html`, `forbidden.html`, `message.html`), so a console can override any of them."""
    if templates_dir is None:
        dirs: list[Path] = []
    elif isinstance(templates_dir, (str, Path)):
        dirs = [Path(templates_dir)]
    else:
        dirs = [Path(d) for d in templates_dir]
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in [*dirs, TEMPLATES_DIR]])
    # Autoescape everything: names and addresses typed by villagers end up in these pages.
    return jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)


def console_context(request: Request) -> dict[str, Any]:
    """What every console template gets: the signed-in person, the CSRF token for forms, and where
    the console's static files are (root_path-aware, so it works behind a path prefix)."""
    signed_in: ConsoleSession | None = getattr(request.state, "console_session", None)
    root_path = _root(request)
    return {
        "signed_in": signed_in,
        "csrf_token": signed_in.csrf_token if signed_in is not None else "",
        "root_path": root_path,
        "console_static": root_path + STATIC_PATH,
    }


def make_templates(
    templates_dir: Path | str | Sequence[Path | str] | None = None, *, console_name: str = "便民服务中心",
) -> Jinja2Templates:
    """`Jinja2Templates` over `make_jinja_env`, with `console_context` and `console_name` filled in."""
    env = make_jinja_env(templates_dir)
    env.globals["console_name"] = console_name
    return Jinja2Templates(env=env, context_processors=[console_context])


def mount_console_static(app: FastAPI, path: str = STATIC_PATH) -> None:
    """Serve `console.css` (no CDN: township networks are often offline or filtered)."""
    app.mount(path, StaticFiles(directory=str(STATIC_DIR)), name=STATIC_ROUTE_NAME)


# ---------------------------------------------------------------------- settings and the console


@dataclass(frozen=True)
class ConsoleSettings:
    console_name: str = "便民服务中心"
    secure_cookies: bool = False
    public_paths: tuple[str, ...] = ()
    home_path: str = "/"
    login_path: str = "/login"
    logout_path: str = "/logout"
    api_prefix: str = "/api/"
    trusted_origins: tuple[str, ...] = ()
    # Cookies ignore ports: a township and a county console on one host need different names, or
    # each would throw away the other's session.
    session_cookie: str = SESSION_COOKIE
    # A form is buffered to find its csrf_token field; beyond this it is refused rather than held in memory.
    max_form_bytes: int = 32 * 1024 * 1024


@dataclass
class Console:
    """What `install_console` returns: keep it to render pages with `console.templates`."""

    auth: ConsoleAuth
    settings: ConsoleSettings
    templates: Jinja2Templates
    login_limiter: RateLimiter | None = None
    _public: tuple[str, ...] = field(default=(), repr=False)
    # Flash messages: the text shown once on the next page, held here by session, never in the URL
    # (a `?notice=` link would let anyone put words in the official notice box).
    _flashes: dict[str, tuple[str, float]] = field(default_factory=dict, repr=False)
    _flash_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def flash(self, text: str) -> None:
        """Keep `text` for the signed-in person's next page (post/redirect/get). No session: dropped."""
        session = _CURRENT_SESSION.get()
        if session is None or not text:
            return
        now = time.monotonic()
        with self._flash_lock:
            for key in [k for k, (_t, expires) in self._flashes.items() if expires <= now]:
                del self._flashes[key]
            while len(self._flashes) >= _MAX_FLASHES:
                del self._flashes[next(iter(self._flashes))]
            self._flashes[session.csrf_token] = (text, now + FLASH_TTL_S)

    def take_flash(self, request: Request) -> str | None:
        """The message kept for this session by `flash`, once; None if there is none."""
        session: ConsoleSession | None = getattr(request.state, "console_session", None)
        if session is None:
            return None
        with self._flash_lock:
            kept = self._flashes.pop(session.csrf_token, None)
        if kept is None or kept[1] <= time.monotonic():
            return None
        return kept[0]

    def render(self, request: Request, name: str, context: dict[str, Any] | None = None, *,
               status_code: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
        return self.templates.TemplateResponse(request, name, context or {}, status_code=status_code, headers=headers)

    def is_public(self, route_path: str) -> bool:
        return any(route_path == p or route_path.startswith(p.rstrip("/") + "/") for p in self._public)

    def is_api(self, request: Request) -> bool:
        """A call to the JSON API mounted at `api_prefix`: its refusals answer `{"code", "message"}`."""
        route = _route_path(request.scope)
        return route.startswith(self.settings.api_prefix) or route == self.settings.api_prefix.rstrip("/")

    def wants_html(self, request: Request) -> bool:
        """Pages get HTML (and a redirect to the login form); API callers get JSON and plain status codes."""
        if _route_path(request.scope).startswith(self.settings.api_prefix):
            return False
        accept = request.headers.get("accept", "")
        return not ("application/json" in accept and "text/html" not in accept)

    def secure(self, request: Request) -> bool:
        return self.settings.secure_cookies or request.url.scheme == "https"

    def error_response(self, request: Request, exc: ConsoleHTTPError) -> Response:
        headers: dict[str, str] = {}
        if isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(exc.retry_after_s)
        if isinstance(exc, NotSignedInError) and self.wants_html(request):
            target = self.settings.login_path
            if request.method in ("GET", "HEAD"):
                # Without root_path: the login route adds it back when it redirects.
                here = _route_path(request.scope) + (f"?{request.url.query}" if request.url.query else "")
                target += "?" + urllib.parse.urlencode({"next": here})
            return RedirectResponse(_root(request) + target, status_code=303)
        if self.is_api(request):
            headers["cache-control"] = "no-store"
            return JSONResponse({"code": api_error_code(exc), "message": exc.message}, status_code=exc.status_code,
                                headers=headers)
        if not self.wants_html(request):
            return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)
        template = "forbidden.html" if exc.status_code == 403 else "message.html"
        return self.render(request, template, {"message": exc.message, "status_code": exc.status_code},
                           status_code=exc.status_code, headers=headers)


# The JSON API's `code` for each refusal the console's middleware and dependencies make (the API's
# error body is `{"code", "message"}`, see `shared.api.web`), most specific class first.
_API_CODES: tuple[tuple[type[ConsoleHTTPError], str], ...] = (
    (OriginError, "foreign_origin"), (CsrfError, "csrf_failed"), (RateLimitedError, "rate_limited"),
    (RequestTooLargeError, "too_large"), (NotSignedInError, "not_signed_in"), (ForbiddenError, "forbidden"),
)


def api_error_code(exc: ConsoleHTTPError) -> str:
    """The API error `code` for a console refusal (`refused` for one not listed)."""
    return next((code for cls, code in _API_CODES if isinstance(exc, cls)), "refused")


def _root(request: Request) -> str:
    """The path prefix the app is served under (empty unless behind a proxy that sets root_path)."""
    return str(request.scope.get("root_path", ""))


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path) and (len(path) == len(root_path) or path[len(root_path)] == "/"):
        return path[len(root_path):] or "/"
    return path


def _console_of(request: Request) -> Console:
    console = getattr(request.app.state, "console", None)
    if console is None:
        raise RuntimeError("install_console(app, auth) has not been called on this app")
    return console


# ---------------------------------------------------------------------- dependencies


def current_staff(request: Request) -> ConsoleSession:
    """FastAPI dependency: the signed-in staff member (`.actor`, `.display_name`, `.role`), or 401/redirect."""
    session: ConsoleSession | None = getattr(request.state, "console_session", None)
    if session is None:
        raise NotSignedInError()
    return session


def require_role(*roles: Role) -> Callable[[Request], ConsoleSession]:
    """FastAPI dependency factory: only these roles may pass; others get a Chinese 403 page.

    There is no implied hierarchy: the system administrator manages accounts but does not, say,
    approve extensions unless a route names `Role.ADMINISTRATOR` too (separation of duties).
    """
    if not roles:
        raise ValueError("require_role needs at least one role")
    allowed = frozenset(roles)
    labels = "或".join(r.label_zh for r in roles)

    def dependency(request: Request) -> ConsoleSession:
        session = current_staff(request)
        if session.role not in allowed:
            raise ForbiddenError(f"您没有权限执行此操作：此操作仅限{labels}，您当前的身份是{session.role.label_zh}。")
        return session

    dependency.__name__ = f"require_role_{'_'.join(r.value for r in roles)}"
    return dependency


def client_address(request: Request) -> str:
    """The client's address: the socket's peer, or behind a trusted proxy the address it forwarded
    (`shared.console.guard.HostGuard` puts that into the scope; nothing here reads the headers)."""
    return request.client.host if request.client is not None else "unknown"


def rate_limit(limiter: RateLimiter, *, key: Callable[[Request], str] = client_address) -> Callable[[Request], None]:
    """FastAPI dependency factory for public pages: 429 with a Chinese message when one client asks too often."""

    def dependency(request: Request) -> None:
        decision = limiter.check(key(request))
        if not decision.allowed:
            raise RateLimitedError(int(limiter.retry_after_header(decision)))

    return dependency


# ---------------------------------------------------------------------- middleware


def _origin_matches(origin: str, host: str | None, trusted: Sequence[str]) -> bool:
    if origin in trusted:
        return True
    if host is None or origin == "null":
        return False
    parsed = urllib.parse.urlsplit(origin)
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.hostname:
        return False
    default_port = _DEFAULT_PORTS[parsed.scheme]
    origin_port = parsed.port or default_port
    # The Host header carries no scheme (TLS may end at a proxy), so compare host and port only.
    host_parsed = urllib.parse.urlsplit("//" + host)
    try:
        host_port = host_parsed.port or default_port
    except ValueError:
        return False
    return (host_parsed.hostname or "").lower() == parsed.hostname.lower() and host_port == origin_port


class _Replay:
    """An ASGI `receive` that hands out an already-read body once, then defers to the real one
    (so disconnect detection keeps working)."""

    def __init__(self, body: bytes, receive: Receive) -> None:
        self._body: bytes | None = body
        self._receive = receive

    async def __call__(self) -> Message:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        return await self._receive()


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError()
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class ConsoleMiddleware:
    """Origin check, session lookup (into `request.state.console_session`), sign-in requirement,
    CSRF check and security headers, in that order."""

    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        console = self.console
        request = Request(scope, receive)
        route_path = _route_path(scope)
        state = scope.setdefault("state", {})
        state["console_session"] = None

        origin = request.headers.get("origin")
        if origin is not None and not _origin_matches(origin, request.headers.get("host"), console.settings.trusted_origins):
            await self._refuse(scope, receive, send, request, OriginError())
            return

        session: ConsoleSession | None = None
        token = request.cookies.get(console.settings.session_cookie)
        static = route_path == STATIC_PATH or route_path.startswith(STATIC_PATH + "/")
        if token and not static:
            # The lookup is a blocking database call; keep it off the event loop.
            session = await run_in_threadpool(console.auth.resolve_session, token)
        state["console_session"] = session

        public = console.is_public(route_path)
        if session is None and not public:
            await self._refuse(scope, receive, send, request, NotSignedInError(), clear_cookie=bool(token))
            return

        if scope["type"] == "http" and scope["method"] in _UNSAFE_METHODS and not public:
            assert session is not None
            try:
                receive = await self._check_csrf(scope, receive, request, session)
            except ConsoleHTTPError as exc:
                await self._refuse(scope, receive, send, request, exc)
                return

        reset = _CURRENT_SESSION.set(session)
        try:
            await self.app(scope, receive, self._with_headers(send, signed_in=session is not None))
        finally:
            _CURRENT_SESSION.reset(reset)

    async def _check_csrf(self, scope: Scope, receive: Receive, request: Request, session: ConsoleSession) -> Receive:
        header = request.headers.get(CSRF_HEADER)
        if header is not None:
            if not hmac.compare_digest(header.encode(), session.csrf_token.encode()):
                raise CsrfError()
            return receive
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            raise CsrfError()
        limit = self.console.settings.max_form_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestTooLargeError()
        body = await _read_body(receive, limit)
        probe = Request(scope, _Replay(body, receive))
        try:
            form = await probe.form()
        except (MultiPartException, StarletteHTTPException, ValueError):
            raise CsrfError() from None
        try:
            submitted = form.get(CSRF_FIELD)
        finally:
            await form.close()
        if not isinstance(submitted, str) or not hmac.compare_digest(submitted.encode(), session.csrf_token.encode()):
            raise CsrfError()
        # The handler reads the same bytes again.
        return _Replay(body, receive)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, request: Request,
                      exc: ConsoleHTTPError, *, clear_cookie: bool = False) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = self.console.error_response(request, exc)
        if clear_cookie:
            response.delete_cookie(self.console.settings.session_cookie, path="/", secure=self.console.secure(request),
                                   httponly=True, samesite="strict")
        await response(scope, receive, self._with_headers(send, signed_in=False))

    @staticmethod
    def _with_headers(send: Send, *, signed_in: bool) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    headers.setdefault(name, value)
                if signed_in:
                    # Shared office PCs: after logout, Back must not show a cached page of personal data.
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        return wrapped


# ---------------------------------------------------------------------- login / logout routes


def _safe_next(value: str | None, home: str) -> str:
    """Only same-site paths: an attacker's link must not turn our login form into an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return home
    if any(ord(ch) < 32 for ch in value):
        return home
    return value


def _add_routes(app: FastAPI, console: Console) -> None:
    settings = console.settings

    def login_page(request: Request, *, next_url: str, error: str | None = None, notice: str | None = None,
                   staff_id: str = "", status_code: int = 200) -> HTMLResponse:
        # Reuse the browser's token if it has one: a second login tab, or the favicon request a browser
        # sends (redirected here too), must not invalidate the form already on screen.
        token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not _TOKEN_RE.match(token):
            token = secrets.token_urlsafe(32)
        response = console.render(request, "login.html", {
            "login_csrf": token, "next": next_url, "error": error, "notice": notice, "staff_id": staff_id,
            "title": "登录", "max_failures": console.auth.policy.max_failures,
            "lockout_minutes": int(console.auth.policy.lockout.total_seconds() // 60),
        }, status_code=status_code, headers={"cache-control": "no-store"})
        response.set_cookie(LOGIN_CSRF_COOKIE, token, path=_root(request) + settings.login_path, httponly=True,
                            samesite="strict", secure=console.secure(request), max_age=3600)
        return response

    async def get_login(request: Request) -> Response:
        next_url = _safe_next(request.query_params.get("next"), settings.home_path)
        if getattr(request.state, "console_session", None) is not None:
            return RedirectResponse(_root(request) + next_url, status_code=303)
        notice = "您已退出登录。" if request.query_params.get("bye") else None
        return login_page(request, next_url=next_url, notice=notice)

    async def post_login(request: Request) -> Response:
        if console.login_limiter is not None:
            decision = console.login_limiter.check(client_address(request))
            if not decision.allowed:
                raise RateLimitedError(int(console.login_limiter.retry_after_header(decision)))
        form = await request.form()
        staff_id = str(form.get("staff_id", ""))[:100]
        password = str(form.get("password", ""))
        next_url = _safe_next(str(form.get("next", "")), settings.home_path)
        submitted = str(form.get(CSRF_FIELD, ""))
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(submitted.encode(), expected.encode()):
            return login_page(request, next_url=next_url, staff_id=staff_id, status_code=403,
                              error="登录页面已过期或安全校验失败，请重新输入后登录。")
        try:
            issued = await run_in_threadpool(functools.partial(
                console.auth.authenticate, staff_id, password, address=client_address(request)))
        except LoginRefusedError as exc:
            return login_page(request, next_url=next_url, staff_id=staff_id, error=str(exc), status_code=401)
        old = request.cookies.get(settings.session_cookie)
        if old:
            # A fresh id at every sign-in: a session id planted before login is worthless after it.
            await run_in_threadpool(console.auth.logout, old)
        response = RedirectResponse(_root(request) + next_url, status_code=303)
        response.set_cookie(settings.session_cookie, issued.token, path="/", httponly=True, samesite="strict",
                            secure=console.secure(request))
        response.delete_cookie(LOGIN_CSRF_COOKIE, path=_root(request) + settings.login_path, httponly=True,
                               samesite="strict", secure=console.secure(request))
        return response

    async def post_logout(request: Request) -> Response:
        await run_in_threadpool(console.auth.logout, request.cookies.get(settings.session_cookie))
        response = RedirectResponse(_root(request) + settings.login_path + "?bye=1", status_code=303)
        response.delete_cookie(settings.session_cookie, path="/", httponly=True, samesite="strict", secure=console.secure(request))
        return response

    app.add_api_route(settings.login_path, get_login, methods=["GET"], include_in_schema=False, name="console_login")
    app.add_api_route(settings.login_path, post_login, methods=["POST"], include_in_schema=False,
                      name="console_login_submit")
    app.add_api_route(settings.logout_path, post_logout, methods=["POST"], include_in_schema=False,
                      name="console_logout")


# ---------------------------------------------------------------------- install


def install_console(
    app: FastAPI,
    auth: ConsoleAuth,
    *,
    templates_dir: Path | str | Sequence[Path | str] | None = None,
    secure_cookies: bool = False,
    console_name: str = "便民服务中心",
    public_paths: Sequence[str] = (),
    home_path: str = "/",
    api_prefix: str = "/api/",
    trusted_origins: Sequence[str] = (),
    login_limiter: RateLimiter | None | bool = True,
    max_form_bytes: int = 32 * 1024 * 1024,
    session_cookie: str = SESSION_COOKIE,
) -> Console:
    """Add `/login`, `/logout`, the console middleware, error pages and `/console-static` to `app`.

    Call before the app serves its first request. `login_limiter=True` (default) limits sign-in
    attempts per client address to 20 at once, refilled one every 3 seconds; pass a `RateLimiter`
    to choose, or `None` to switch it off.
    """
    settings = ConsoleSettings(
        console_name=console_name, secure_cookies=secure_cookies, public_paths=tuple(public_paths),
        home_path=home_path, api_prefix=api_prefix, trusted_origins=tuple(trusted_origins),
        max_form_bytes=max_form_bytes, session_cookie=session_cookie,
    )
    limiter: RateLimiter | None
    if login_limiter is True:
        limiter = RateLimiter(capacity=20, refill_per_second=1 / 3, clock=auth.clock)
    elif login_limiter is False or login_limiter is None:
        limiter = None
    else:
        limiter = login_limiter
    console = Console(
        auth=auth, settings=settings, templates=make_templates(templates_dir, console_name=console_name),
        login_limiter=limiter, _public=(settings.login_path, STATIC_PATH, *settings.public_paths),
    )
    app.state.console = console
    mount_console_static(app)
    _add_routes(app, console)

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleHTTPError)
        return console.error_response(request, exc)

    app.add_exception_handler(ConsoleHTTPError, handle)

    async def not_found(request: Request, exc: Exception) -> Response:
        # Starlette's own errors (no such page, wrong method) would answer `{"detail":"Not Found"}`
        # in English: staff see a page in Chinese, API clients a Chinese message.
        status = int(getattr(exc, "status_code", 404))
        message = {404: "找不到该页面：链接可能有误，或该办件、记录已不存在。",
                   405: "该页面不支持这种操作，请从页面上的按钮进入。"}.get(status, "请求无法处理，请返回重试。")
        if console.is_api(request):
            code = {404: "not_found", 405: "method_not_allowed"}.get(status, "bad_request")
            return JSONResponse({"code": code, "message": message}, status_code=status,
                                headers={"cache-control": "no-store"})
        if not console.wants_html(request):
            return JSONResponse({"detail": message}, status_code=status)
        return console.render(request, "message.html", {"message": message, "status_code": status},
                              status_code=status)

    app.add_exception_handler(StarletteHTTPException, not_found)
    app.add_middleware(ConsoleMiddleware, console=console)
    return console

