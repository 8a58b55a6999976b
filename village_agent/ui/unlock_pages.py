"""The unlock page (`/unlock`: passphrase or PIN) and the lock button (`/lock`); the gate itself is
`village_agent.ui.unlock`, and `village_agent.ui.guards.UnlockGuard` sends every other page here."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from village_agent.ui.errors import UnlockRefused
from village_agent.ui.guards import LOCK_PATH, UNLOCK_PATH, safe_next
from village_agent.ui.pages import CSRF_FIELD, Pages
from village_agent.ui.unlock import UNLOCK_COOKIE

__all__ = ["router"]


def router(pages: Pages) -> APIRouter:
    gate = pages.gate
    config = pages.service.config
    routes = APIRouter()

    def unlock_page(request: Request, *, error: str = "", next_url: str = "/", status_code: int = 200) -> HTMLResponse:
        # Not `pages.render`: the locked page shows nothing of the matters (not even the outbox count).
        html = pages.env.get_template("unlock.html").render(
            csrf_token=pages.csrf_token, csrf_field=CSRF_FIELD, village_name=config.village_name,
            agent_name=config.agent_name, error=error, next=next_url,
            idle_minutes=int(gate.policy.idle_timeout.total_seconds() // 60),
            pin_set=gate.pin is not None and gate.pin.is_set(), locked=request.query_params.get("locked") == "1")
        return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})

    @routes.get(UNLOCK_PATH, response_class=HTMLResponse)
    async def unlock_form(request: Request, next: str = "/") -> Response:
        if gate.session_ok(request.cookies.get(UNLOCK_COOKIE)):
            return RedirectResponse(safe_next(next), status_code=303)
        return unlock_page(request, next_url=safe_next(next))

    @routes.post(UNLOCK_PATH)
    async def unlock_submit(request: Request) -> Response:
        form = await pages.read_form(request)
        next_url = safe_next(str(form.get("next", "/")))
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

    @routes.post(LOCK_PATH)
    async def lock_now(request: Request) -> Response:
        await pages.read_form(request)
        gate.lock(request.cookies.get(UNLOCK_COOKIE))
        response = RedirectResponse(f"{UNLOCK_PATH}?locked=1", status_code=303)
        response.delete_cookie(UNLOCK_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return routes
