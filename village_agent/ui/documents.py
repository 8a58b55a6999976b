"""Numbered documents printed from this browser: `/matters/{ref}/documents/{what}` numbers and signs
on the first print, `/documents/{number}` serves the stored page, `/document-static/{name}` its assets."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from village_agent.receipt import VillageDocuments
from village_agent.ui.pages import Pages

__all__ = ["router"]


def router(pages: Pages) -> APIRouter:
    service = pages.service
    documents = VillageDocuments(service)
    routes = APIRouter()

    @routes.get("/matters/{matter_ref}/documents/{what}")
    async def print_document(request: Request, matter_ref: str, what: str) -> Response:
        """The first print numbers and signs the document; every later print is the same bytes."""
        from shared.documents.adapters.web import document_url
        from shared.documents.errors import DocumentError

        matter_id = service.resolve_matter(matter_ref)
        try:
            doc = await run_in_threadpool(documents.issue_or_load, what, matter_id)
        except DocumentError as exc:
            return pages.message(request, str(exc), 409)
        return RedirectResponse(document_url(doc.number), status_code=303)

    @routes.get("/documents/{number}", response_class=HTMLResponse)
    async def stored_document(request: Request, number: str) -> Response:
        from shared.documents.errors import DocumentNotFound

        try:
            doc = documents.load(number)
        except DocumentNotFound as exc:
            return pages.message(request, str(exc), 404)
        return Response(doc.html.encode("utf-8"), media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    @routes.get("/document-static/{name}")
    async def document_asset(name: str) -> Response:
        from shared.documents.adapters.web import ASSETS, TEMPLATES

        if name not in ASSETS:
            return Response("找不到该文件", status_code=404, media_type="text/plain; charset=utf-8")
        return Response((TEMPLATES / name).read_bytes(), media_type=ASSETS[name])

    return routes
