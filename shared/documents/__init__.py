"""The written documents 文书: kinds, content built from the signed records, numbers 文号, rendering
to HTML with the templates shared by the browser's print view and the PDF archive, signing and
verification. Pure; the numbering and archive tables and the PDF engine are in `adapters`."""
from shared.documents.content import RECONSIDERATION_RIGHTS, DocumentContent, Line, content_hash
from shared.documents.kinds import DocumentKind, IssuingTier
from shared.documents.numbering import format_number, numbering_year, parse_number
from shared.documents.render import render_html
from shared.documents.signed import IssuedDocument, Verification, issue, verify_document

__all__ = ["DocumentContent", "Line", "RECONSIDERATION_RIGHTS", "content_hash", "DocumentKind", "IssuingTier",
           "format_number", "numbering_year", "parse_number", "render_html", "IssuedDocument", "Verification",
           "issue", "verify_document"]
