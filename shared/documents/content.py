"""The content of a written document, as plain data built from the signed records, and its hash.

A document's content is fixed when it is issued: the canonical JSON of `DocumentContent` is hashed
(SHA-256), the hash is printed on the paper, and the tier signs a statement naming the number, the
content hash and the hash of the rendered HTML. A reprint serves the stored HTML, so it is the first
print byte for byte; nothing on it is retyped or read again from today's tables.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

from shared.documents.errors import DocumentInvalid
from shared.documents.kinds import DocumentKind, IssuingTier

__all__ = ["Line", "DocumentContent", "canonical_json", "content_hash", "content_from_json", "date_zh",
           "instant_zh", "short_hash", "normalise_hash", "RECONSIDERATION_RIGHTS"]

SHANGHAI = ZoneInfo("Asia/Shanghai")

# 不予许可决定书 (000; 行政复议法 第二十条, 行政诉讼法 第四十六条): the applicant's remedies, in the
# words the notice must carry.
RECONSIDERATION_RIGHTS = (
    "如不服本决定，可以自收到本决定书之日起六十日内依法申请行政复议，"
    "或者自收到本决定书之日起六个月内依法向人民法院提起行政诉讼。"
)


@dataclass(frozen=True)
class Line:
    """One labelled line of the document's table (事项名称：……)."""

    label: str
    value: str


@dataclass(frozen=True)
class DocumentContent:
    kind: DocumentKind
    tier: IssuingTier
    number: str                    # 文号, e.g. 青石镇便民中心〔2026〕诺字第3号
    title: str                     # the kind's title, or the refusal's 不予（行政）许可决定书 wording
    issuer_name: str               # 青石镇便民服务中心 (configured)
    seal_text: str                 # the seal's text (configured)
    issued_at_ms: int
    matter_id: str                 # internal: which matter the document belongs to; never printed
    addressee: str                 # 张三 (the applicant), or the township a 督办 goes to
    opening: str = ""              # first paragraph after the addressee
    lines: tuple[Line, ...] = ()
    list_heading: str = ""
    items: tuple[str, ...] = ()    # a list (materials missing, not-counted periods)
    paragraphs: tuple[str, ...] = ()
    rights: str = ""               # remedies, printed in their own paragraph
    signatures: tuple[Line, ...] = ()   # who signs the paper (申请人签名：, 代办员：)
    footer_note: str = ""
    verify_hint: str = ""          # where to verify it: the issuer's public verify page

    @property
    def issued_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.issued_at_ms / 1000, tz=dt.UTC)

    @property
    def issued_on_zh(self) -> str:
        return date_zh(self.issued_at)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"], d["tier"] = self.kind.value, self.tier.value
        return d


def canonical_json(content: DocumentContent) -> bytes:
    """The exact bytes the content hash covers: sorted keys, no spaces, UTF-8."""
    return json.dumps(content.to_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def content_hash(content: DocumentContent) -> str:
    return hashlib.sha256(canonical_json(content)).hexdigest()


def content_from_json(data: bytes | str) -> DocumentContent:
    raw = json.loads(data)
    return DocumentContent(
        kind=DocumentKind(raw["kind"]), tier=IssuingTier(raw["tier"]), number=raw["number"], title=raw["title"],
        issuer_name=raw["issuer_name"], seal_text=raw["seal_text"], issued_at_ms=int(raw["issued_at_ms"]),
        matter_id=raw["matter_id"], addressee=raw["addressee"], opening=raw.get("opening", ""),
        lines=tuple(Line(**x) for x in raw.get("lines", ())), list_heading=raw.get("list_heading", ""),
        items=tuple(raw.get("items", ())), paragraphs=tuple(raw.get("paragraphs", ())), rights=raw.get("rights", ""),
        signatures=tuple(Line(**x) for x in raw.get("signatures", ())), footer_note=raw.get("footer_note", ""),
        verify_hint=raw.get("verify_hint", ""),
    )


def date_zh(at: dt.datetime) -> str:
    local = at.astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日"


def instant_zh(at: dt.datetime) -> str:
    local = at.astimezone(SHANGHAI)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def short_hash(digest_hex: str) -> str:
    """The 16-character check code printed large on the paper (the full hash is printed beside it)."""
    h = digest_hex[:16].upper()
    return "-".join(h[i:i + 4] for i in range(0, 16, 4))


def normalise_hash(typed: str) -> str:
    """What a person typed as the check code or the full hash, as lower-case hex (at least 16 digits)."""
    cleaned = "".join(ch for ch in typed.strip().lower() if ch not in " -－—\t")
    if len(cleaned) < 16 or len(cleaned) > 64 or any(ch not in "0123456789abcdef" for ch in cleaned):
        raise DocumentInvalid("校验码应为文书上印的 16 位校验码（如 1A2B-3C4D-5E6F-7A8B）或 64 位完整哈希值")
    return cleaned
