"""代办员设备 (`/agents`): the village agents' laptop keys, pending, approved or revoked; approving
takes the fingerprint's last group as read out on the phone, revoking takes a reason."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from shared.clock import from_unix_ms, to_unix_ms
from shared.console import ConsoleSession, require_role
from shared.domain.handling import Role
from town_center.console.pages import STAFF, Pages, bj

__all__ = ["router"]

# The console's one logger keeps the name operators filter on, whichever page module logs.
log = logging.getLogger("town_center.console")


def router(pages: Pages) -> APIRouter:
    app = pages.app
    back = pages.back
    routes = APIRouter()

    @routes.get("/agents", response_class=HTMLResponse)
    def agents(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        # Stale pending enrollments leave the page as well as the bound (docs/wire-v1.md §3).
        app.store.expire_pending(now_ms=to_unix_ms(app.clock.now()), expire_after_ms=app.core.limits.enrollment.expire_after_ms)
        listed = app.services.list_agents()
        # A village code held by more than one pending or approved key: a look-alike enrollment, or a
        # second laptop, either way an operator must look before approving (issue 15).
        live = [a.info.village_code for a in listed if a.info.village_code and a.state.value in ("pending", "approved")]
        return pages.render(request, "agents.html", {
            "title": "代办员设备", "nav_here": "agents", "agents": listed,
            "clashes": {code for code in live if live.count(code) > 1},
            "pending_days": app.core.limits.enrollment.expire_after_ms // 86_400_000,
            "can_manage": staff.role in (Role.ADMINISTRATOR, Role.DIRECTOR), "ms": lambda v: bj(from_unix_ms(v)) if v else "—",
        })

    @routes.post("/agents/{key_id}/{what}")
    async def agent_action(request: Request, key_id: str, what: str,
                           staff: ConsoleSession = Depends(require_role(Role.ADMINISTRATOR, Role.DIRECTOR))) -> Response:
        raw = await request.form()
        try:
            if what == "approve":
                # The operator types the fingerprint's last group as read out by the agent: a look-alike
                # name cannot be approved by a click.
                typed = str(raw.get("fingerprint_check", "")).strip()
                target = next((a for a in app.services.list_agents() if a.key_id == key_id), None)
                if target is None or not typed or target.info.fingerprint.split()[-1:] != [typed]:
                    return back("/agents", "指纹核对不符：请与代办员电话逐组核对，输入指纹最后一组五位数字后再批准")
                agent = await run_in_threadpool(lambda: app.services.approve(key_id, by=staff.staff_id))
                notice = f"已批准 {agent.info.village_code} {agent.info.holder_name} 的设备密钥"
            elif what == "revoke":
                reason = str(raw.get("reason", "")).strip()
                if not reason:
                    return back("/agents", "吊销设备密钥须写明原因（如：笔记本丢失）")
                agent = await run_in_threadpool(lambda: app.services.revoke(key_id, by=staff.staff_id, reason=reason))
                notice = f"已吊销 {agent.info.village_code} {agent.info.holder_name} 的设备密钥，此后收到的记录一律拒收"
            else:
                return back("/agents", "未知的操作")
        except Exception as exc:  # noqa: BLE001 - the services raise Chinese messages (unknown key, wrong state)
            log.info("agent %s %s refused: %s", key_id, what, exc)
            return back("/agents", str(exc) or "操作未成功")
        return back("/agents", notice)

    return routes
