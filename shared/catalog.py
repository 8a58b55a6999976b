"""Loading the service catalogue 服务事项目录 from a file: the adapter beside the pure catalogue in
`shared.domain.catalog`, which holds its types, its validation (`parse_catalog`) and the materials
assessment. Here only the reading: the file the county pushed, or the one shipped in the package
(`shared/data/catalog.toml`).
"""
from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

from shared.domain.catalog import FILE_ITEM, Catalog, parse_catalog
from shared.errors import CatalogError

__all__ = ["load_catalog", "shipped_catalog_text"]

# Where the shipped file lives inside the installed package.
_PACKAGE = "shared"
_RESOURCE = ("data", "catalog.toml")


def shipped_catalog_text() -> str:
    """The TOML text of the catalogue shipped in the package (what the county pushes as version 1)."""
    return importlib.resources.files(_PACKAGE).joinpath(*_RESOURCE).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _shipped_catalog() -> Catalog:
    return parse_catalog(shipped_catalog_text())


def load_catalog(path: Path | None = None) -> Catalog:
    """Load and validate a catalogue file; without `path`, the one shipped in the package.

    The shipped catalogue is parsed once per process (it is immutable); a path is read every time,
    because a county update may have replaced the file. A file that cannot be read is a
    `CatalogError` like any other refusal, so the county's data officer sees one kind of message.
    """
    if path is None:
        return _shipped_catalog()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(FILE_ITEM, "path", f"无法读取目录文件 {path}：{exc}") from exc
    return parse_catalog(text)
