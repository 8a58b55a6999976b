"""否定报备 (`/refusals`): every 不予批准 the county decided, with the township by name, the matter by
title, the reason, who decided and who approved it (a major or difficult matter's refusal needs the
director's approval, 004 篇6)."""
from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse

from hub.console.app import STAFF, Pages
from hub.delegation import active_delegations
from hub.handling import RefusalEntry
from shared.console import ConsoleSession, require_role
from shared.domain.handling import Role

__all__ = ["add_routes", "approval_zh"]


def approval_zh(entry: RefusalEntry, label: str) -> str:
    """Who approved the refusal, in words: the director deciding himself, the director who approved an
    approver's request, or why no approval was needed."""
    if not entry.approved_by:
        return "无需（非重大疑难事项，受委托审批人直接决定）"
    if entry.approved_by == entry.decided_by:
        return f"{label}（本人决定）"
    return label


def add_routes(web: FastAPI, pages: Pages) -> None:
    app = pages.app

    @web.get("/refusals", response_class=HTMLResponse)
    def refusals(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        names = pages.staff_labels()
        delegations = active_delegations(app.store.engine)
        rows: list[dict[str, Any]] = []
        for e in app.handling.refusals():
            decided = pages.staff_label(e.decided_by, names)
            if e.decided_by_role is Role.APPROVER and e.decided_by in delegations:
                decided += f"，受{pages.staff_label(delegations[e.decided_by].delegated_by, names)}委托"
            rows.append({"e": e, "decided": decided,
                         "approved": approval_zh(e, pages.staff_label(e.approved_by, names)),
                         "township": e.township_name or "未登记名称的乡镇"})
        return pages.render(request, "refusals.html", {"title": "否定报备", "nav_here": "refusals", "rows": rows})
