"""同步 (`/sync`: what waits to be sent and whether the township answers) and 我的评价
(`/my-figures`: the agent's own 好差评 figures)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from village_agent.my_figures import my_figures
from village_agent.ui.pages import Pages
from village_agent.ui.reachability import sync_panel

__all__ = ["router"]


def router(pages: Pages) -> APIRouter:
    service = pages.service
    routes = APIRouter()

    @routes.get("/sync", response_class=HTMLResponse)
    async def sync_page(request: Request) -> Response:
        return pages.render(request, "sync.html", sync=sync_panel(service, pages.sync_status),
                            matters=service.store.count_matters(), township=service.config.township_name)

    @routes.get("/my-figures", response_class=HTMLResponse)
    async def my_figures_page(request: Request) -> Response:
        return pages.render(request, "my_figures.html", figures=my_figures(service.store, service.catalog),
                            township=service.config.township_name)

    return routes
