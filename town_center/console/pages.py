"""What every page of the township console shares: the roles that may read and act, the time and
list helpers the templates use, and one `Pages` helper to render (with the calendar warning and the
flash notice), redirect after a post, and answer with a message page.

The page groups (`inbox`, `matter_pages`, `oversight`, `agents`, `figures`, `follow_ups`, `public`)
each build one router from a `Pages`; `town_center.console.app.create_console_app` only assembles.
Sign-in, sessions, CSRF and the role dependency come from `shared.console`.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from fastapi import Request

from shared.console import Console, ConsoleAuth
from shared.console.pages import PageHelpers
from shared.domain.deadlines import ClockState
from shared.domain.handling import Role
from town_center.bootstrap import TownApp

__all__ = ["Pages", "bj", "lines", "read_form", "BEIJING", "STAFF", "HANDLERS", "RATING_ZH", "STATE_CLASS"]

# The console's one logger keeps the name operators filter on, whichever page module logs.
log = logging.getLogger("town_center.console")

BEIJING = dt.timezone(dt.timedelta(hours=8))
# 督查 reads matters (to check the overdue ones and call applicants) but takes no action on them.
STAFF = (Role.OPERATOR, Role.DIRECTOR, Role.ADMINISTRATOR, Role.SUPERVISOR)
HANDLERS = (Role.OPERATOR, Role.DIRECTOR)
RATING_ZH = {1: "非常满意", 2: "满意", 3: "基本满意", 4: "不满意", 5: "非常不满意"}
STATE_CLASS = {ClockState.ON_TIME: "on-time", ClockState.WARNING: "warning", ClockState.OVERDUE: "overdue",
               ClockState.SUPERVISE: "supervise"}


def bj(value: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "—" if value is None else value.astimezone(BEIJING).strftime(fmt)


def lines(text: str) -> list[str]:
    """A typed list (one per line, or separated by 、，；) as items."""
    return [x.strip() for x in re.split(r"[\n\r、，,；;]+", text or "") if x.strip()]


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields as text; the CSRF token was checked by `shared.console` and is no field."""
    raw = await request.form()
    return {k: str(v) for k, v in raw.items() if k != "csrf_token"}


@dataclass
class Pages(PageHelpers):
    """What a page group needs: the township app, the console and its accounts, and the
    render/redirect helpers over them."""

    app: TownApp
    console: Console
    auth: ConsoleAuth

