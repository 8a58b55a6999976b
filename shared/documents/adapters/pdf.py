"""PDF for the archive: WeasyPrint lays out the same HTML the browser prints (its A4 print CSS) with
Debian's Noto CJK fonts (fonts-noto-cjk) through Pango. WeasyPrint rather than a headless browser:
it is a library in the server process (no browser to install on a township server), honours @page,
and for the same HTML and fonts writes the same bytes, so an archived PDF can be re-rendered and
compared."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging

from shared.documents.errors import DocumentRenderError

__all__ = ["html_to_pdf", "pdf_sha256", "html_in_pdf", "EMBEDDED_NAME"]

# The archive PDF carries the signed HTML it was laid out from, as an embedded file: a tier that holds
# only the issuer's signed hashes (the county for a township's notice) can then check a PDF someone
# brings, by hashing that HTML and laying it out again (docs/wire-v1.md "Written documents").
EMBEDDED_NAME = "document.html"
_FIXED_AT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

log = logging.getLogger(__name__)


# The template links its stylesheet for the browser (the CSP refuses inline styles there) and carries
# the same rules inline for WeasyPrint: the link resolves under this base and is answered empty, so the
# archive never reads a file or the network and the PDF depends on the HTML alone.
_BASE = "file:///quancheng-document/print/"


def _no_fetch(url: str, *args: object, **kwargs: object) -> object:
    from weasyprint.urls import URLFetcherResponse

    kind = "text/css" if url.endswith(".css") else "application/octet-stream"
    return URLFetcherResponse(url, body=b"", headers={"Content-Type": kind})


def html_to_pdf(html: str, *, embed_html: bool = True) -> bytes:
    """`embed_html=False` lays out as archives made before the HTML was embedded (their re-check)."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:   # OSError: Pango or its fonts missing on this machine
        raise DocumentRenderError("本机未安装 PDF 生成组件（WeasyPrint 与 Pango），文书 PDF 未能生成；"
                                  "请运行 ops/install.sh 安装后重试") from exc
    try:
        # Fixed dates: WeasyPrint would stamp the embedded file with the current time, and the PDF must be
        # the same bytes whenever the signed HTML is laid out again.
        attachments = [weasyprint.Attachment(string=html.encode("utf-8"), name=EMBEDDED_NAME, base_url=_BASE,
                                             url_fetcher=_no_fetch, created=_FIXED_AT, modified=_FIXED_AT)
                       ] if embed_html else []
        return bytes(weasyprint.HTML(string=html, base_url=_BASE, url_fetcher=_no_fetch)
                     .write_pdf(attachments=attachments))
    except Exception as exc:
        log.exception("PDF rendering failed")
        raise DocumentRenderError("文书 PDF 生成失败，请联系系统管理员") from exc


def pdf_sha256(pdf: bytes) -> str:
    return hashlib.sha256(pdf).hexdigest()


def html_in_pdf(pdf: bytes) -> bytes | None:
    """The signed HTML an archive PDF carries, or None when the file is no such PDF (or unreadable)."""
    import io

    try:
        import pypdf
    except ImportError as exc:
        raise DocumentRenderError("本机未安装 PDF 读取组件（pypdf），无法核验 PDF 文件；请运行 ops/install.sh 安装后重试") from exc
    logging.getLogger("pypdf").setLevel(logging.CRITICAL)   # a stranger's file: its faults are not ours to log
    try:
        found = pypdf.PdfReader(io.BytesIO(pdf)).attachments.get(EMBEDDED_NAME)
    except Exception:  # noqa: BLE001 - any unreadable file is simply not one of our PDFs
        return None
    return bytes(found[0]) if found else None
