"""The documents' pages in a tier's console (township and county alike): the print view (the stored
HTML, byte for byte the first print), the archived PDF, and the public verify page, by number and
the check code printed on the paper (政务公开: anyone holding a notice can check it)."""
from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import jinja2
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from shared.console import Console, ConsoleSession, RateLimiter, rate_limit, require_role
from shared.documents.adapters.archive import DocumentListing
from shared.documents.content import normalise_hash
from shared.documents.errors import DocumentError, DocumentInvalid, DocumentNotFound
from shared.documents.numbering import parse_number
from shared.documents.signed import IssuedDocument, Verification

__all__ = ["DocumentService", "install_document_routes", "document_url", "CONSOLE_TEMPLATES", "VERIFY_PATH", "TEMPLATES",
           "ASSETS"]

CONSOLE_TEMPLATES = Path(__file__).resolve().parent.parent / "console_templates"
VERIFY_PATH = "/public/verify"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
ASSETS = {"document.css": "text/css; charset=utf-8", "print.js": "text/javascript; charset=utf-8"}


class DocumentService(Protocol):
    def of_matter(self, matter_id: str) -> list[DocumentListing]: ...
    def load(self, number: str) -> IssuedDocument: ...
    def pdf(self, number: str) -> bytes: ...
    def verify(self, number: str, *, typed_hash: str = "") -> Verification: ...


def document_url(number: str, suffix: str = "") -> str:
    return "/documents/" + urllib.parse.quote(number, safe="") + suffix


def install_document_routes(web: FastAPI, console: Console, documents: DocumentService, *,
                            staff_roles: Sequence[Any], limiter: RateLimiter) -> None:
    """Add the documents' routes and templates to a console; the matter page lists a matter's
    documents with `documents_of(matter_id)` and `document_url(number)`."""
    env = console.templates.env
    env.loader = jinja2.ChoiceLoader([env.loader, jinja2.FileSystemLoader(str(CONSOLE_TEMPLATES))]) \
        if env.loader is not None else jinja2.FileSystemLoader(str(CONSOLE_TEMPLATES))
    env.globals["documents_of"] = documents.of_matter
    env.globals["document_url"] = document_url

    def not_found(request: Request, message: str) -> HTMLResponse:
        return console.render(request, "message.html", {"title": "找不到文书", "message": message, "status_code": 404},
                              status_code=404)

    @web.get("/document-static/{name}")
    def asset(name: str, staff: ConsoleSession = Depends(require_role(*staff_roles))) -> Response:
        """The print view's stylesheet and print button (the consoles' CSP refuses inline ones)."""
        if name not in ASSETS:
            return Response("找不到该文件", status_code=404, media_type="text/plain; charset=utf-8")
        return Response((TEMPLATES / name).read_bytes(), media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})

    @web.get("/documents/{number}", response_class=HTMLResponse)
    def print_view(request: Request, number: str,
                   staff: ConsoleSession = Depends(require_role(*staff_roles))) -> Response:
        """The stored HTML exactly as first printed: a reprint is the first print, byte for byte."""
        try:
            doc = documents.load(number)
        except DocumentNotFound as exc:
            return not_found(request, str(exc))
        return Response(doc.html.encode("utf-8"), media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    @web.get("/documents/{number}/pdf")
    def pdf(request: Request, number: str, staff: ConsoleSession = Depends(require_role(*staff_roles))) -> Response:
        try:
            body = documents.pdf(number)
        except DocumentNotFound as exc:
            return not_found(request, str(exc))
        except DocumentError as exc:
            return console.render(request, "message.html", {"title": "无法生成 PDF", "message": str(exc),
                                                            "status_code": 503}, status_code=503)
        name = urllib.parse.quote(f"{number}.pdf")
        return Response(body, media_type="application/pdf", headers={
            "Cache-Control": "no-store", "Content-Disposition": f"inline; filename=\"document.pdf\"; filename*=UTF-8''{name}"})

    @web.get(VERIFY_PATH, response_class=HTMLResponse, dependencies=[Depends(rate_limit(limiter))])
    async def verify(request: Request, number: str = "", code: str = "") -> HTMLResponse:
        ctx: dict[str, Any] = {"title": "文书核验", "number": number[:120], "code": code[:80]}
        if not number and not code:
            return console.render(request, "document_verify.html", ctx)
        try:
            parsed = parse_number(number[:120])
            typed = normalise_hash(code[:80])
            result = await run_in_threadpool(documents.verify, parsed.text, typed_hash=typed)
        except DocumentNotFound as exc:
            return console.render(request, "document_verify.html", {**ctx, "error": str(exc)}, status_code=404)
        except DocumentInvalid as exc:
            return console.render(request, "document_verify.html", {**ctx, "error": str(exc)}, status_code=400)
        return console.render(request, "document_verify.html", {**ctx, "result": result},
                              status_code=200 if result.genuine else 409)
