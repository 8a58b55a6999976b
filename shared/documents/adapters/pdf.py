"""PDF for the archive: WeasyPrint lays out the same HTML the browser prints (its A4 print CSS) with
Debian's Noto CJK fonts (fonts-noto-cjk) through Pango. WeasyPrint rather than a headless browser:
it is a library in the server process (no browser to install on a township server), honours @page,
and for the same HTML and fonts writes the same bytes, so an archived PDF can be re-rendered and
compared."""
from __future__ import annotations

import hashlib
import logging

from shared.documents.errors import DocumentRenderError

__all__ = ["html_to_pdf", "pdf_sha256"]

log = logging.getLogger("shared.documents.pdf")


# The template links its stylesheet for the browser (the CSP refuses inline styles there) and carries
# the same rules inline for WeasyPrint: the link resolves under this base and is answered empty, so the
# archive never reads a file or the network and the PDF depends on the HTML alone.
_BASE = "file:///quancheng-document/print/"


def _no_fetch(url: str, *args: object, **kwargs: object) -> object:
    from weasyprint.urls import URLFetcherResponse

    kind = "text/css" if url.endswith(".css") else "application/octet-stream"
    return URLFetcherResponse(url, body=b"", headers={"Content-Type": kind})


def html_to_pdf(html: str) -> bytes:
    try:
        import weasyprint
    except (ImportError, OSError) as exc:   # OSError: Pango or its fonts missing on this machine
        raise DocumentRenderError("本机未安装 PDF 生成组件（WeasyPrint 与 Pango），文书 PDF 未能生成；"
                                  "请运行 ops/install.sh 安装后重试") from exc
    try:
        return bytes(weasyprint.HTML(string=html, base_url=_BASE, url_fetcher=_no_fetch).write_pdf())
    except Exception as exc:  # noqa: BLE001 - any layout failure is reported the same way
        log.exception("PDF rendering failed")
        raise DocumentRenderError("文书 PDF 生成失败，请联系系统管理员") from exc


def pdf_sha256(pdf: bytes) -> str:
    return hashlib.sha256(pdf).hexdigest()
