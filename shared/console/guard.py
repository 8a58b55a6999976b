"""What every web server of the three tiers does before a page sees a request: refuse a foreign
`Host`, find the client's real address, and add the security headers to every answer.

* Host allow-list (`WebSecurity.allowed_hosts`): the names the server was told to listen on, the
  loopback names when it listens on loopback (or everywhere), plus the names an administrator adds
  (`--allowed-host`). A request naming any other host is refused before routing: a page on another
  site that rebinds its own name to this server's address (DNS rebinding) gets nothing.
* Client address: the socket's peer. `X-Forwarded-For` / `X-Forwarded-Proto` are honoured only when
  that peer is one of the configured trusted proxies (`--trusted-proxy`); then the client is the
  rightmost address in the chain that is not itself a trusted proxy. Without trusted proxies the
  headers are ignored, so nobody can pick their own rate-limit bucket by sending one. uvicorn's own
  proxy-header handling (which trusts 127.0.0.1 by default) must be off: `uvicorn_options` says so.
* Security headers (`SECURITY_HEADERS`): a Content-Security-Policy that allows only this server's own
  scripts, styles and images, `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff` and a
  `Referrer-Policy`, on every response, refusals included.
"""
from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.console.errors import WebSettingError

__all__ = ["WebSecurity", "HostGuard", "SECURITY_HEADERS", "LOOPBACK_NAMES", "host_of", "is_loopback_address",
           "uvicorn_options"]

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})

# Inline style attributes are allowed (a few pages size an input that way); inline <style> and
# every inline or foreign script are not. `data:`/`blob:` images: the signature pad's drawing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
)

FOREIGN_HOST_ZH = ("拒绝访问：网址中的服务器名称不是本服务器的名称。请使用管理员告知的网址访问；"
                   "如需通过其他名称访问，请管理员在启动参数中用 --allowed-host 添加该名称。")


def host_of(host_header: str) -> str:
    """The host part of a `Host` header, lower-case, without port or IPv6 brackets ("" if malformed)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else ""
    if host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


def is_loopback_address(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise WebSettingError(f"受信任的代理应为 IP 地址或网段（如 10.0.0.5 或 10.0.0.0/24），收到“{text}”") from None


def _check_host_name(name: str) -> str:
    cleaned = host_of(name)
    if not cleaned or any(ch in cleaned for ch in "/@ \t") or cleaned != name.strip().lower().strip("[]").rstrip("."):
        raise WebSettingError(f"允许的服务器名称应为主机名或 IP 地址（不含端口和 http://），收到“{name}”")
    return cleaned


@dataclass(frozen=True)
class WebSecurity:
    """How a tier's web server was told to face the network (see the module docstring).

    `listen_host` is the host part of the listen address; `extra_hosts` are further names the pages
    may be reached by (e.g. the name a reverse proxy passes on); `trusted_proxies` are addresses or
    networks whose forwarded headers are believed."""

    listen_host: str = "127.0.0.1"
    extra_hosts: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    _networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default=(), init=False, repr=False)
    _allowed: frozenset[str] = field(default=frozenset(), init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_hosts", tuple(_check_host_name(h) for h in self.extra_hosts))
        object.__setattr__(self, "_networks", tuple(_network(p) for p in self.trusted_proxies))
        object.__setattr__(self, "_allowed", self._derive_allowed_hosts())

    @classmethod
    def for_address(cls, address: str, *, extra_hosts: Iterable[str] = (),
                    trusted_proxies: Iterable[str] = ()) -> WebSecurity:
        """From a listen address `host:port` (IPv6 as `[::1]:port`)."""
        host = address.rpartition(":")[0] if ":" in address else address
        return cls(listen_host=host.strip("[]").lower(), extra_hosts=tuple(extra_hosts),
                   trusted_proxies=tuple(trusted_proxies))

    @property
    def allowed_hosts(self) -> frozenset[str]:
        return self._allowed

    def _derive_allowed_hosts(self) -> frozenset[str]:
        names = set(self.extra_hosts)
        listen = self.listen_host.strip("[]").lower()
        if listen in _WILDCARDS:
            # Listening everywhere: this machine by its loopback names and its own host name.
            names |= LOOPBACK_NAMES | {socket.gethostname().lower()}
        else:
            names.add(listen)
            if is_loopback_address(listen):
                names |= LOOPBACK_NAMES
        return frozenset(names)

    def host_allowed(self, host_header: str | None) -> bool:
        return host_header is not None and host_of(host_header) in self.allowed_hosts

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        return any(ip in net for net in self._networks)

    def client_from_chain(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client's address: `peer` unless it is a trusted proxy, then the rightmost address in
        `forwarded_for` that is not one (the leftmost when every hop is trusted)."""
        if not self.trusts(peer):
            return peer
        chain = [a.strip() for header in forwarded_for for a in header.split(",") if a.strip()]
        client = peer
        for hop in reversed(chain):
            client = hop
            if not self.trusts(hop):
                break
        return client


class UvicornOptions(TypedDict):
    """The keyword arguments `uvicorn_options` gives `uvicorn.Config` (typed, so each is checked there)."""

    proxy_headers: bool
    server_header: bool
    access_log: bool
    log_config: None
    log_level: str
    lifespan: Literal["auto", "on", "off"]


def uvicorn_options() -> UvicornOptions:
    """What every uvicorn.Config here must say: forwarded headers are `HostGuard`'s business only."""
    return {"proxy_headers": False, "server_header": False, "access_log": False, "log_config": None,
            "log_level": "warning", "lifespan": "off"}


class HostGuard:
    """Pure ASGI, outermost: Host allow-list, the client's address from trusted proxies, security headers."""

    def __init__(self, app: ASGIApp, security: WebSecurity) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", [])]
        hosts = [v for k, v in headers if k == "host"]
        if len(hosts) != 1 or not self.security.host_allowed(hosts[0]):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _refuse(send, 400, FOREIGN_HOST_ZH, as_json=_is_api_path(scope.get("path", "")))
            return
        client = scope.get("client")
        if client is not None and self.security.trusted_proxies:
            peer = str(client[0])
            if self.security.trusts(peer):
                scope = dict(scope)
                real = self.security.client_from_chain(peer, [v for k, v in headers if k == "x-forwarded-for"])
                scope["client"] = (real, 0)
                proto = [v for k, v in headers if k == "x-forwarded-proto"]
                if proto and proto[-1].split(",")[-1].strip().lower() in ("http", "https"):
                    scope["scheme"] = proto[-1].split(",")[-1].strip().lower()
        await self.app(scope, receive, with_security_headers(send))


def with_security_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            response_headers = MutableHeaders(scope=message)
            for name, value in SECURITY_HEADERS:
                response_headers[name] = value
        await send(message)

    return wrapped


def _is_api_path(path: str) -> bool:
    """The JSON API the consoles mount at `/api` (`shared.api`): its refusals are `{"code", "message"}` JSON."""
    return path == "/api" or path.startswith("/api/")


async def _refuse(send: Send, status: int, text_zh: str, *, as_json: bool = False) -> None:
    if as_json:
        body = json.dumps({"code": "foreign_host", "message": text_zh}, ensure_ascii=False).encode("utf-8")
        content_type = b"application/json"
    else:
        body = (f"<!doctype html><html lang=zh-CN><meta charset=utf-8><title>拒绝访问</title>"
                f"<p>{text_zh}</p></html>").encode()
        content_type = b"text/html; charset=utf-8"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
