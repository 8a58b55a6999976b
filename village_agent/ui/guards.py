"""The village UI's two ASGI guards, outermost first: `LocalGuard` (Host, Origin, body size) and
`UnlockGuard` (nothing but the unlock page answers until the agent has unlocked).

Pure ASGI so they run before any form is parsed; why each check exists is in `village_agent.ui.server`.
"""
from __future__ import annotations

import urllib.parse

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.console.guard import with_security_headers
from village_agent.ui.unlock import UNLOCK_COOKIE, UnlockGate

__all__ = ["LocalGuard", "UnlockGuard", "LOCAL_HOSTS", "MAX_BODY_BYTES", "UNLOCK_PATH", "LOCK_PATH", "safe_next"]

# A form holds at most one image (≤ 3 MB, base64 adds a third) plus short text fields.
MAX_BODY_BYTES = 6 * 1024 * 1024
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
UNLOCK_PATH = "/unlock"
LOCK_PATH = "/lock"
# Reachable while locked: the unlock page itself and the stylesheet and script it uses.
_OPEN_WHILE_LOCKED = (UNLOCK_PATH, "/static/")


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


def safe_next(value: str) -> str:
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
