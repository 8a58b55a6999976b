"""Sync messages as the agent reads them: Chinese only, without the transport's raw error text.

The relay client explains a failed pass in Chinese and appends what gRPC said in brackets
(`无法连接乡镇（UNAVAILABLE：failed to connect to all addresses; …）`). That raw text helps whoever
reads the log (the client logs it), not the village agent, so the laptop's pages and its command
line show the Chinese part with a plain hint instead.
"""
from __future__ import annotations

import re

# A full-width bracket holding a gRPC status name ("（UNAVAILABLE：…）"), or text without any Chinese
# that is long enough to be a transport message rather than a short term like "（TLS）".
_BRACKET = re.compile(r"（([^（）]*)）")
_STATUS_NAME = re.compile(r"^\s*[A-Z][A-Z_]{3,}\s*[:：]")
_CJK = re.compile(r"[\u3400-\u9fff]")
_HINTS = {
    "UNAVAILABLE": "网络不通，或乡镇中心未开机",
    "DEADLINE_EXCEEDED": "网络太慢，连接超时",
    "UNAUTHENTICATED": "乡镇中心不认可本机",
    "PERMISSION_DENIED": "乡镇中心不认可本机",
    "RESOURCE_EXHAUSTED": "乡镇中心繁忙",
    "INVALID_ARGUMENT": "乡镇中心认为请求有误",
    "FAILED_PRECONDITION": "乡镇中心暂不能接收",
}


def _raw(inner: str) -> bool:
    if _STATUS_NAME.match(inner):
        return True
    return not _CJK.search(inner) and len(inner.strip()) > 8


def plain_sync_text(text: str) -> str:
    """`text` with raw transport messages replaced by a short Chinese hint (or dropped)."""
    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        if not _raw(inner):
            return match.group(0)
        name = inner.split("：", 1)[0].split(":", 1)[0].strip()
        hint = _HINTS.get(name)
        return f"（{hint}）" if hint else ""

    cleaned = _BRACKET.sub(replace, text or "")
    if cleaned.strip() and not _CJK.search(cleaned):
        # Nothing Chinese left: an untranslated message from below; say so rather than show it.
        return "同步出错（详情见本机日志），稍后自动重试"
    return cleaned.strip()
