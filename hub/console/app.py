"""The county board (县政务服务中心): the FastAPI app and what every page shares.

The pages live in small modules that each add their routes (`board`, `oversight`, `townships`,
`calendar_page`); this module wires them onto `shared.console` (login, sessions, CSRF, roles) and
gives them one `Pages` helper to render and redirect. Everything reads and acts through `HubApp`:
the handling service, the township key store and the deadline calendar.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from hub.api import create_hub_api
from hub.bootstrap import HubApp
from hub.console.formatting import STATE_CLASS, bj, ms_bj
from shared.console import Console, ConsoleAuth, RateLimiter, ScryptParams, create_console_tables, install_console
from shared.console.pages import PageHelpers
from shared.console.passwords import DEFAULT_SCRYPT
from shared.documents.adapters.web import VERIFY_PATH, install_document_routes
from shared.domain.handling import Role

__all__ = ["create_console_app", "open_console_auth", "Pages", "SESSION_COOKIE", "CONSOLE_NAME", "STAFF", "HANDLERS",
           "KEY_MANAGERS"]

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SESSION_COOKIE = "qc_county_session"
CONSOLE_NAME = "县政务服务中心"
STATIC_PATH = "/county-static"
API_PATH = "/api"
# 督查 reads every matter and issues 督办 (hub.acts), but decides nothing.
STAFF = (Role.OPERATOR, Role.APPROVER, Role.DIRECTOR, Role.ADMINISTRATOR, Role.SUPERVISOR)
# Casework (督办, and the acts `hub.acts` allows each role: deciding is a director's or a delegated
# approver's); the administrator runs accounts and keys, not cases (separation of duties).
HANDLERS = (Role.OPERATOR, Role.APPROVER, Role.DIRECTOR)
# Trusting a township's key (or the calendar deadlines count on) is a director's or administrator's call.
KEY_MANAGERS = (Role.DIRECTOR, Role.ADMINISTRATOR)


def open_console_auth(app: HubApp, *, kdf: ScryptParams = DEFAULT_SCRYPT) -> ConsoleAuth:
    """Staff accounts live in the county database beside the matters (`county-hub staff add` writes them)."""
    create_console_tables(app.store.engine)
    return ConsoleAuth(app.store.engine, app.clock, kdf=kdf)


@dataclass
class Pages(PageHelpers):
    """What a page module needs: the county app, the console, and the render/redirect helpers."""

    app: HubApp
    console: Console

    def staff_labels(self) -> dict[str, str]:
        """Login → how pages name the staff member: display name with role (a login is never shown)."""
        return {a.staff_id: f"{a.display_name}（{a.role.label_zh}）" for a in self.console.auth.list_staff()}

    @staticmethod
    def staff_label(staff_id: str, labels: dict[str, str]) -> str:
        """A recorded staff id in words; a name typed after `--by` on the command line is shown as typed."""
        return labels.get(staff_id) or staff_id or "—"

    def township_names(self) -> dict[str, str]:
        """Township code → name, from the link keys' enrollment (a code may have had several keys)."""
        names: dict[str, str] = {}
        for key in self.app.store.keys():
            if key.info.township_code:
                names.setdefault(key.info.township_code, key.info.holder_name)
        return names


async def read_form(request: Request) -> dict[str, str]:
    raw = await request.form()
    return {k: str(v) for k, v in raw.items() if k != "csrf_token" and isinstance(v, str)}


def create_console_app(app: HubApp, auth: ConsoleAuth, *, secure_cookies: bool = False,
                       console_name: str = CONSOLE_NAME, trusted_origins: tuple[str, ...] = ()) -> FastAPI:
    from hub.console import board, calendar_page, oversight, refusals, townships

    web = FastAPI(title=console_name, docs_url=None, redoc_url=None, openapi_url=None)
    console = install_console(web, auth, templates_dir=HERE / "templates", console_name=console_name,
                              public_paths=(STATIC_PATH, API_PATH, VERIFY_PATH), session_cookie=SESSION_COOKIE,
                              secure_cookies=secure_cookies, trusted_origins=trusted_origins)
    web.mount(STATIC_PATH, StaticFiles(directory=str(HERE / "static")), name="county_static")
    env = console.templates.env
    env.filters["bj"] = bj
    env.filters["ms_bj"] = ms_bj
    env.globals.update(county_static=STATIC_PATH, state_class=STATE_CLASS)
    pages = Pages(app, console)
    board.add_routes(web, pages)
    oversight.add_routes(web, pages)
    refusals.add_routes(web, pages)
    townships.add_routes(web, pages)
    calendar_page.add_routes(web, pages)
    from hub import evaluation

    evaluation.add_routes(web, pages)   # the county's own 督办 for its staff
    if app.handling.documents is not None:
        # Written documents: print view, archived PDF, and the public verify page (by number and check code).
        install_document_routes(web, console, app.handling.documents, staff_roles=HANDLERS,
                                limiter=RateLimiter(capacity=10, refill_per_second=1 / 30, clock=app.clock))
    # The JSON API beside the pages: bearer tokens only (the middleware lets it through unsigned-in,
    # the API checks its own token), the same services and role rule; see README "JSON 接口".
    web.mount(API_PATH, create_hub_api(app, auth))
    return web
