"""The sync panel's port: whether the township relay answered, as the relay loop reports it, and the
panel the 同步 page shows (records waiting, last sync, reachable or not, in plain words)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from shared.clock import from_unix_ms
from village_agent.services import SHANGHAI, AgentService
from village_agent.sync_text import plain_sync_text

__all__ = ["Reachability", "SyncStatus", "SyncPanel", "sync_panel"]

log = logging.getLogger("village_agent.ui")


@dataclass(frozen=True)
class Reachability:
    """Whether the township relay answered; `None` means nobody knows yet (not wired or not tried)."""

    reachable: bool | None
    detail: str = ""


# The relay loop will provide one of these; without it the page says honestly that it does not know.
SyncStatus = Callable[[], Reachability]


@dataclass(frozen=True)
class SyncPanel:
    waiting: int
    last_sync_at: str
    reachable: bool | None
    reachable_zh: str
    detail: str


def sync_panel(service: AgentService, sync_status: SyncStatus | None) -> SyncPanel:
    waiting = service.store.outbox_size()
    raw = service.store.get_meta("last_sync_at_ms", "")
    try:
        last_ms = int(raw) if raw else 0
    except ValueError:
        last_ms = 0
    last = f"{from_unix_ms(last_ms).astimezone(SHANGHAI):%Y-%m-%d %H:%M}" if last_ms else "从未同步"
    if sync_status is None:
        return SyncPanel(waiting, last, None, "未连接", "后台同步尚未启动，无法判断乡镇中心是否可达。")
    try:
        state = sync_status()
    except Exception:  # a broken probe must not take the page down; say we do not know
        log.exception("sync status probe failed")
        state = Reachability(None, "无法获取同步状态")
    zh = {True: "可以连接", False: "无法连接", None: "未知"}[state.reachable]
    return SyncPanel(waiting, last, state.reachable, zh, plain_sync_text(state.detail))
