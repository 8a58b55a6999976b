"""统计 (`/figures`, and `/figures.csv` to download): matters received and handled, grouped by
village, by village agent or by window staff member, with a bar chart."""
from __future__ import annotations

import urllib.parse
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from shared.console import ConsoleSession, require_role
from shared.domain.figures import bar_chart_svg, figures_by, to_csv
from town_center.console.pages import STAFF, Pages

__all__ = ["router"]


def router(pages: Pages) -> APIRouter:
    app = pages.app
    facts = app.handling.matter_facts
    routes = APIRouter()

    GROUPS = {"village": ("按村", lambda m: m.village_code), "agent": ("按代办员", lambda m: m.agent_key_id),
              "operator": ("按窗口工作人员", lambda m: m.operator_id)}

    def grouped(by: str) -> tuple[str, list[Any], Any]:
        if by not in GROUPS:
            by = "village"
        title, key = GROUPS[by]
        names = {a.key_id: f"{a.info.village_code} {a.info.holder_name}" for a in app.services.list_agents()}
        label = (lambda k: names.get(k, k[:8])) if by == "agent" else str
        return by, figures_by(facts(), key), label

    @routes.get("/figures", response_class=HTMLResponse)
    def figures(request: Request, by: str = "village", staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        by, rows, label = grouped(by)
        chart = bar_chart_svg([(label(f.key), f.received) for f in rows], title=f"受理件数（{GROUPS[by][0]}）", unit="件")
        return pages.render(request, "figures.html", {"title": "统计", "nav_here": "figures", "rows": rows, "by": by,
                                                      "groups": GROUPS, "label": label, "chart": chart})

    @routes.get("/figures.csv")
    def figures_csv(by: str = "village", staff: ConsoleSession = Depends(require_role(*STAFF))) -> Response:
        by, rows, label = grouped(by)
        name = urllib.parse.quote(f"统计-{GROUPS[by][0]}.csv")
        return Response(to_csv(rows, label), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": f"attachment; filename=figures-{by}.csv; filename*=UTF-8''{name}"})

    return routes
