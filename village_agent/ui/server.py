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

This module only assembles: the guards (`guards`), the shared helpers and error pages (`pages`),
and one router per page group (`unlock_pages`, `matters`, `documents`, `signoff`, `appointments`,
`status`), then serves the app.
"""
from __future__ import annotations

import datetime as dt
import secrets

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from shared.clock import SystemClock
from shared.console.guard import WebSecurity, is_loopback_address, uvicorn_options
from village_agent.config import Paths
from village_agent.services import AgentService
from village_agent.ui import appointments, documents, matters, signoff, status, unlock_pages
from village_agent.ui.guards import LOCAL_HOSTS, LocalGuard, UnlockGuard
from village_agent.ui.matters import DeadlineBadge, deadline_badge
from village_agent.ui.pages import HERE, Pages, install_error_pages, jinja_environment
from village_agent.ui.reachability import Reachability, SyncStatus
from village_agent.ui.unlock import UnlockGate, UnlockPin, UnlockPolicy

# Reachability, SyncStatus and deadline_badge are imported from here by the relay loop and the tests.
__all__ = ["create_app", "serve", "default_unlock_gate", "Reachability", "SyncStatus", "DeadlineBadge",
           "deadline_badge", "LOCAL_HOSTS"]


def default_unlock_gate(service: AgentService, policy: UnlockPolicy | None = None) -> UnlockGate:
    """The passphrase checked against this laptop's key file, or the agent's PIN if one was set."""
    paths = Paths(service.store.path.parent)
    # The real clock, not the service's: idleness is the agent's, whatever time the records are given.
    return UnlockGate(paths.key, SystemClock(), pin=UnlockPin(paths.unlock_pin, service.signer), policy=policy)


def create_app(service: AgentService, *, sync_status: SyncStatus | None = None,
               allowed_hosts: frozenset[str] = LOCAL_HOSTS, unlock: UnlockGate | None = None) -> FastAPI:
    """The UI over one open `AgentService`. `sync_status` is the relay's reachability probe, if it
    runs. `unlock` checks the passphrase or PIN (by default against this laptop's own key file and
    PIN file)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    # The CSRF token is per process: a restart invalidates forms left open, which is fine.
    pages = Pages(service, jinja_environment(), secrets.token_urlsafe(32), unlock or default_unlock_gate(service),
                  sync_status)
    install_error_pages(app, pages)
    # Routes match in the order they were added: the groups keep the order the pages always had.
    for group in (unlock_pages, matters, documents, signoff, appointments, status):
        app.include_router(group.router(pages))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    # Added last = outermost: the Host/Origin/size checks run before the unlock check.
    app.add_middleware(UnlockGuard, gate=pages.gate)
    app.add_middleware(LocalGuard, allowed_hosts=allowed_hosts)
    return app


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
