"""Running a tier's console (FastAPI app) with uvicorn in a thread beside its gRPC server, behind
`shared.console.guard.HostGuard` (Host allow-list, trusted proxies, security headers)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from shared.console.guard import HostGuard, WebSecurity, uvicorn_options

__all__ = ["ConsoleServer", "start_console_server"]


@dataclass
class ConsoleServer:
    server: Any
    thread: threading.Thread
    port: int

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_console_server(web: FastAPI, address: str, *, security: WebSecurity | None = None,
                         timeout_s: float = 15.0) -> ConsoleServer:
    """uvicorn in a daemon thread; returns once it listens (port 0 picks a free one). `security`
    defaults to what the listen address alone allows (its own name; loopback names on loopback)."""
    import uvicorn

    host, _, port = address.rpartition(":")
    guarded = HostGuard(web, security or WebSecurity.for_address(address))
    config = uvicorn.Config(guarded, host=(host or "127.0.0.1").strip("[]"), port=int(port), **uvicorn_options())
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"网页服务未能在 {address} 启动")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return ConsoleServer(server, thread, int(bound))


def add_web_security_options(parser: Any, *, console: bool = True) -> None:
    """`--allowed-host`, `--trusted-proxy` (with `console`) and `--insecure-plaintext` on a `serve` command."""
    if console:
        parser.add_argument("--allowed-host", action="append", default=[], metavar="名称",
                            help="网页还允许用此服务器名称访问（可多次给出），例如反向代理转来的域名 town.example.gov.cn；"
                                 "默认只认监听地址本身（监听本机时为 127.0.0.1、localhost）")
        parser.add_argument("--trusted-proxy", action="append", default=[], metavar="地址",
                            help="受信任的反向代理的 IP 地址或网段（可多次给出）：只有来自它们的 X-Forwarded-For 才被采信，"
                                 "用于登录限流和查询限流；未设置时一律按直连地址计算")
    parser.add_argument("--insecure-plaintext", action="store_true",
                        help="允许在非本机地址上不加密（无 TLS/HTTPS）提供服务；仅用于可信内网，默认拒绝启动")


def web_security_from_args(args: Any, console_address: str | None) -> WebSecurity | None:
    """The console's `WebSecurity` from those options (None without a console); bad values raise `WebSettingError`."""
    if not console_address:
        return None
    return WebSecurity.for_address(console_address, extra_hosts=getattr(args, "allowed_host", []) or [],
                                   trusted_proxies=getattr(args, "trusted_proxy", []) or [])
