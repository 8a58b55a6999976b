"""I/O edges of the written documents: the numbering and archive tables (SQLAlchemy) and the PDF
renderer (WeasyPrint). The rest of `shared.documents` is pure."""
