"""Errors raised by `shared.documents`.

Hierarchy::

    SharedError (shared.errors)
    └── DocumentError               base of every written-document error
        ├── DocumentRenderError     a document cannot be rendered (a template is missing or the PDF
        │                           engine or its fonts are not installed)
        ├── DocumentNotFound        no document carries the number asked for
        └── DocumentInvalid         a document's number, hash or input is malformed (bad input from a
                                    verify page or CLI), said in Chinese for the person who typed it

Verification itself never raises for a forged or tampered document: `verify_document` returns a
`Verification` listing what failed, so a page or CLI can show every problem at once.
"""
from __future__ import annotations

from shared.errors import SharedError

__all__ = ["DocumentError", "DocumentRenderError", "DocumentNotFound", "DocumentInvalid"]


class DocumentError(SharedError):
    """Base of every error raised by `shared.documents` and the tiers' document services."""


class DocumentRenderError(DocumentError):
    """Raised when a document cannot be rendered to HTML or PDF (template or PDF engine missing)."""


class DocumentNotFound(DocumentError):
    """Raised when no stored document carries the number asked for."""


class DocumentInvalid(DocumentError):
    """Raised when a number or hash typed into a verify page or CLI is malformed."""
