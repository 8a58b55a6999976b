"""The township operator console: inbox, matter page with every action, 督办 list, extensions,
agents, figures, follow-up calls and the public status page (政务公开).

This module only assembles: `shared.console` (sign-in, sessions, CSRF, roles), one router per page
group (`inbox`, `matter_pages`, `oversight`, `agents`, `figures`, `follow_ups`, `public`) over the
shared helpers in `pages`, the front desk's, 好差评's and the documents' pages, and the JSON API.
Everything reads and acts through `TownApp` (the handling service, the agent services and the
deadline calendar); the only direct table reads are the public lookup by code hash and the
follow-up list, which joins the matter rows.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from shared.console import ConsoleAuth, RateLimiter, create_console_tables, install_console
from shared.console.serve import ConsoleServer, start_console_server
from shared.documents.adapters.web import install_document_routes
from shared.domain.handling import Role
from town_center.api import create_town_api
from town_center.bootstrap import TownApp
from town_center.console import agents, figures, follow_ups, inbox, matter_pages, oversight, public
from town_center.console.evaluation_pages import PUBLIC_EVALUATE_PATH, install_evaluation_pages
from town_center.console.pages import HANDLERS, RATING_ZH, STATE_CLASS, Pages, bj
from town_center.evaluation import Evaluations
from town_center.front_desk.console import install_front_desk
from town_center.sms_hook import add_sms_hook_route

__all__ = ["create_console_app", "open_console_auth", "start_console_server", "ConsoleServer", "SESSION_COOKIE"]

HERE = Path(__file__).parent
SESSION_COOKIE = "qc_town_session"
STATIC_PATH = "/town-static"
API_PATH = "/api"


class _ConsoleStaff:
    """The console's accounts as the handling service's staff directory (AB handover checks)."""

    def __init__(self, auth: ConsoleAuth) -> None:
        self._auth = auth

    def active_name(self, staff_id: str) -> str | None:
        try:
            account = self._auth.get_staff(staff_id)
        except Exception:  # noqa: BLE001 - unknown or malformed id: not a colleague
            return None
        return None if account.disabled or account.role is Role.ADMINISTRATOR else account.display_name


def open_console_auth(app: TownApp) -> ConsoleAuth:
    """Staff accounts live in the township database beside the matters."""
    create_console_tables(app.store.engine)
    return ConsoleAuth(app.store.engine, app.clock)


def create_console_app(app: TownApp, auth: ConsoleAuth, *, secure_cookies: bool = False,
                       console_name: str = "乡镇便民服务中心", public_limiter: RateLimiter | None = None,
                       trusted_origins: tuple[str, ...] = ()) -> FastAPI:
    web = FastAPI(title=console_name, docs_url=None, redoc_url=None, openapi_url=None)
    console = install_console(web, auth, templates_dir=HERE / "templates", console_name=console_name,
                              public_paths=("/public", STATIC_PATH, API_PATH, PUBLIC_EVALUATE_PATH), session_cookie=SESSION_COOKIE,
                              secure_cookies=secure_cookies, trusted_origins=trusted_origins)
    web.mount(STATIC_PATH, StaticFiles(directory=str(HERE / "static")), name="town_static")
    env = console.templates.env
    env.filters["bj"] = bj
    env.globals.update(town_static=STATIC_PATH, state_class=STATE_CLASS, rating_zh=RATING_ZH)
    handling = app.handling
    handling.staff = _ConsoleStaff(auth)
    # The JSON API beside the pages: bearer tokens only (the middleware lets it through unsigned-in,
    # the API checks its own token), the same services and role rule; see README "JSON 接口".
    web.mount(API_PATH, create_town_api(app, auth))
    limiter = public_limiter if public_limiter is not None else RateLimiter(capacity=10, refill_per_second=1 / 30, clock=app.clock)
    pages = Pages(app, console, auth)
    evaluations = Evaluations(handling)

    # Routes match in the order they were added: the groups keep the order the pages always had
    # (`/follow-ups/draw` before `/follow-ups/{matter_id}`, the matter actions before the front desk's).
    for routes in (inbox.router(pages), matter_pages.router(pages), oversight.router(pages), agents.router(pages),
                   figures.router(pages), follow_ups.router(pages, evaluations)):
        web.include_router(routes)
    if app.front_desk is not None:   # the front desk's pages: window intake, registers, appointments, AB posts
        install_front_desk(web, app.front_desk, render=pages.render, back=pages.back, auth=auth, bj=bj)
    # 好差评: the pages in evaluation_pages.py, and the SMS gateway's replies (docs/evaluation.md).
    web.state.evaluations = evaluations
    install_evaluation_pages(web, evaluations, auth, render=pages.render, render_public=console.render,
                             back=pages.back, limiter=limiter)
    add_sms_hook_route(web, evaluations, app.clock)
    web.include_router(public.router(pages, limiter))
    if handling.documents is not None:   # written documents: print, PDF, public verify
        install_document_routes(web, console, handling.documents, staff_roles=HANDLERS, limiter=limiter)
    return web
