"""收件箱 (`/`): the township's matters by village, stage and owner, paged by a keyset cursor."""
from __future__ import annotations

import urllib.parse

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from shared.console import ConsoleSession, require_role
from shared.domain.handling import Stage
from town_center.console.pages import STAFF, Pages

__all__ = ["router", "INBOX_PAGE_SIZE"]

INBOX_PAGE_SIZE = 100


def router(pages: Pages) -> APIRouter:
    handling = pages.app.handling
    routes = APIRouter()

    @routes.get("/", response_class=HTMLResponse)
    def inbox(request: Request, village: str = "", stage: str = "", mine: str = "", page: str = "1", after: str = "",
              staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        stages = [Stage(stage)] if stage in {s.value for s in Stage} else None
        number = int(page) if page.isdigit() and int(page) > 0 else 1
        # "下一页" carries the keyset cursor (cheap however deep); other page links count from the top.
        box = handling.inbox_page(village_code=village or None, stages=stages, owner=staff.staff_id if mine else None,
                                  page=number, page_size=INBOX_PAGE_SIZE, after=after[:120])
        query = {k: v for k, v in (("village", village), ("stage", stage), ("mine", mine)) if v}
        return pages.render(request, "inbox.html", {
            "title": "收件箱", "nav_here": "inbox", "items": box.items, "box": box, "villages": handling.villages(),
            "stages": list(Stage), "village": village, "stage": stage, "mine": bool(mine),
            "page_url": lambda n: "?" + urllib.parse.urlencode({**query, "page": n}),
            "next_url": "?" + urllib.parse.urlencode({**query, "page": number + 1, "after": box.next_after})
            if box.next_after else "",
        })

    return routes
