"""Rendering a document's content to HTML with the Jinja templates shared by the browser's print
view (A4 print CSS) and the PDF archive copy. Rendering is deterministic: the same content gives
the same bytes, which is what lets a reprint be checked against the first print's hash."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import jinja2

from shared.documents.content import DocumentContent, content_hash, short_hash
from shared.documents.errors import DocumentRenderError

__all__ = ["render_html", "html_sha256", "TEMPLATE_DIR"]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render_html(content: DocumentContent) -> str:
    """The document's HTML page, from its content alone."""
    digest = content_hash(content)
    try:
        template = _env().get_template("document.html")
    except jinja2.TemplateNotFound as exc:
        raise DocumentRenderError(f"缺少文书模板：{exc.name}") from exc
    return template.render(doc=content, digest=digest, check_code=short_hash(digest))


def html_sha256(html: str) -> str:
    return hashlib.sha256(html.encode("utf-8")).hexdigest()
