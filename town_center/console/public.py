"""办件进度查询 (`/public`, 政务公开): anyone with a receipt's lookup code sees the matter's title,
stage and deadline, nothing personal; no sign-in, rate-limited per address."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from shared.clock import from_unix_ms
from shared.console import RateLimiter, rate_limit
from shared.domain import lookup_code
from shared.domain.catalog import MatterKind
from shared.domain.handling import Stage
from town_center.console.pages import Pages
from town_center.store.matter_tables import town_matter

__all__ = ["router", "PUBLIC_NOT_FOUND"]

PUBLIC_NOT_FOUND = "未查到与该查询码对应的办件。请核对回执上的查询码（10 位字母数字，如 AB3CD-EF4GH）后重试。"


def router(pages: Pages, limiter: RateLimiter) -> APIRouter:
    app = pages.app
    console = pages.console
    routes = APIRouter()

    @routes.get("/public", response_class=HTMLResponse)
    def public_form(request: Request) -> HTMLResponse:
        return console.render(request, "public.html", {"title": "办件进度查询"})

    def lookup(code: str) -> dict[str, Any] | None:
        with app.store.engine.connect() as conn:
            row = conn.execute(select(town_matter.c.matter_id, town_matter.c.catalog_code, town_matter.c.stage,
                                      town_matter.c.kind, town_matter.c.due_at_ms, town_matter.c.received_at_ms)
                               .where(town_matter.c.lookup_code_hash == lookup_code.lookup_code_hash(code))).first()
        if row is None:
            return None
        catalog = app.handling.catalog
        return {"name": catalog.item(row.catalog_code).name if row.catalog_code in catalog else row.catalog_code,
                "stage": Stage(row.stage).label_zh, "kind": MatterKind(row.kind).label_zh if row.kind else "待分类",
                "received_at": from_unix_ms(int(row.received_at_ms)),
                "due_at": from_unix_ms(int(row.due_at_ms)) if row.due_at_ms else None}

    @routes.post("/public", response_class=HTMLResponse, dependencies=[Depends(rate_limit(limiter))])
    async def public_lookup(request: Request) -> HTMLResponse:
        raw = await request.form()
        code = lookup_code.normalise(str(raw.get("code", ""))[:40])
        found = await run_in_threadpool(lookup, code) if code else None
        if found is None:
            return console.render(request, "public.html", {"title": "办件进度查询", "error": PUBLIC_NOT_FOUND},
                                  status_code=404)
        return console.render(request, "public.html", {"title": "办件进度查询", "found": found})

    return routes
