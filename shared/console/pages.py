"""The page helpers every tier's console shares: render with the calendar warning and the waiting
notice, post/redirect/get, and the message page. A tier's `Pages` dataclass mixes them in and
declares its own `app` (anything with a `clock` and `deadlines.calendar`) and `console`."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from shared.console.web import Console
from shared.domain.evaluation import BEIJING

__all__ = ["PageHelpers"]

log = logging.getLogger(__name__)


class PageHelpers:
    app: Any
    console: Console

    def now(self) -> dt.datetime:
        return self.app.clock.now()

    def render(self, request: Request, name: str, context: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
        today = self.now().astimezone(BEIJING).date()
        try:
            warning = self.app.deadlines.calendar.warning_zh(today, today + dt.timedelta(days=60))
        except Exception:
            # A broken calendar file must not take every page down with it: the banner says what to do.
            log.exception("calendar warning failed")
            warning = "工作日历无法读取，请联系系统管理员核对节假日安排。"
        ctx = {"calendar_warning": warning, "now": self.now(), "notice": self.console.take_flash(request), **context}
        return self.console.render(request, name, ctx, status_code=status_code)

    def back(self, url: str, notice: str) -> RedirectResponse:
        """Post/redirect/get: a reload after an action must not repeat it. The notice waits
        server-side for the next page, never in the URL (a link must not put words in the notice box)."""
        self.console.flash(notice)
        return RedirectResponse(url, status_code=303)

    def message(self, request: Request, text: str, status_code: int = 404) -> HTMLResponse:
        return self.render(request, "message.html", {"message": text, "status_code": status_code},
                           status_code=status_code)
