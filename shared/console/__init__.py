"""Web console foundation shared by the township operator console and the county board.

* `ConsoleAuth` (`auth`): staff accounts (scrypt passwords), sign-in with lock-out, DB sessions.
* `create_console_tables` (`store`): the `staff`, `staff_session` and `login_failure` tables.
* `install_console`, `current_staff`, `require_role`, `rate_limit` (`web`): FastAPI integration.
* `RateLimiter` (`ratelimit`): per-client token buckets for public pages.
* `WebSecurity`, `HostGuard` (`guard`): the Host allow-list, trusted proxies and security headers that
  `start_console_server` (`serve`) puts in front of every console; the village UI uses the same rules.
* `register_staff_commands` (`cli`): `staff add|list|disable|enable|passwd` for a tier's CLI.
* Templates `base.html` (blocks `title`, `nav`, `content`), `login.html`, `forbidden.html`,
  `message.html` and `static/console.css`.

A tier's console uses it like this::

    engine = shared.db.make_engine(url); create_console_tables(engine)
    auth = ConsoleAuth(engine, SystemClock())
    app = FastAPI()
    console = install_console(app, auth, templates_dir=HERE / "templates", console_name="青石镇便民服务中心",
                              public_paths=("/public",), session_cookie="qc_town_session",
                              secure_cookies=True)   # when served over HTTPS (also automatic for https URLs)

    @app.get("/")
    def today(request: Request, staff: ConsoleSession = Depends(require_role(Role.OPERATOR, Role.DIRECTOR))):
        return console.render(request, "today.html", {"matters": ...})   # today.html: {% extends "base.html" %}

    @app.post("/matters/{matter_id}/extension/approve")           # forms need <input name="csrf_token" value="{{ csrf_token }}">
    def approve(matter_id: str, staff: ConsoleSession = Depends(require_role(Role.DIRECTOR))): ...

    @app.get("/public/status", dependencies=[Depends(rate_limit(RateLimiter(10, 0.5, clock=clock)))])
    def lookup(...): ...
"""
from __future__ import annotations

from shared.console.auth import AuthPolicy, ConsoleAuth, ConsoleSession, IssuedSession, StaffAccount
from shared.console.cli import register_staff_commands
from shared.console.errors import (
    AccountDisabledError,
    AccountLockedError,
    ConsoleError,
    ConsoleHTTPError,
    CsrfError,
    ForbiddenError,
    LoginRefusedError,
    NotSignedInError,
    OriginError,
    PasswordPolicyError,
    RateLimitedError,
    RequestTooLargeError,
    StaffExistsError,
    StaffInputError,
    UnknownStaffError,
    WebSettingError,
)
from shared.console.guard import HostGuard, WebSecurity
from shared.console.passwords import DEFAULT_SCRYPT, ScryptParams
from shared.console.ratelimit import RateLimiter
from shared.console.store import create_console_tables
from shared.console.web import (
    Console,
    ConsoleSettings,
    client_address,
    current_staff,
    install_console,
    make_jinja_env,
    make_templates,
    mount_console_static,
    rate_limit,
    require_role,
)

__all__ = [
    "AuthPolicy", "ConsoleAuth", "ConsoleSession", "IssuedSession", "StaffAccount", "DEFAULT_SCRYPT", "ScryptParams",
    "RateLimiter", "HostGuard", "WebSecurity", "register_staff_commands", "create_console_tables", "Console", "ConsoleSettings",
    "client_address", "current_staff",
    "install_console", "make_jinja_env", "make_templates", "mount_console_static", "rate_limit", "require_role",
    "ConsoleError", "StaffInputError", "PasswordPolicyError", "StaffExistsError", "UnknownStaffError",
    "LoginRefusedError", "AccountLockedError", "AccountDisabledError", "ConsoleHTTPError", "NotSignedInError",
    "ForbiddenError", "CsrfError", "OriginError", "RequestTooLargeError", "RateLimitedError", "WebSettingError",
]
