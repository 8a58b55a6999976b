"""Connects the agent's outbox to the township's relay: one-shot sync for the CLI and a
background loop for `serve`. The loop holds only a wake-up flag; the queue is the outbox table."""
from __future__ import annotations

from dataclasses import dataclass

from shared.clock import from_unix_ms
from shared.relay.client import RelayClient, SyncResult
from shared.wire.v1 import relay_pb2
from village_agent.outbox import village_outbox
from village_agent.services import SHANGHAI, AgentService
from village_agent.sync_text import plain_sync_text

KEY_STATUS_ZH: dict[int, str] = {
    relay_pb2.KEY_STATUS_PENDING: "本机密钥待乡镇审批，审批通过后自动上报",
    relay_pb2.KEY_STATUS_APPROVED: "本机密钥已批准",
    relay_pb2.KEY_STATUS_REVOKED: "本机密钥已被乡镇吊销，请联系乡镇便民服务中心",
    relay_pb2.KEY_STATUS_QUARANTINED: "本机记录出现分叉，已被乡镇隔离，请联系乡镇便民服务中心",
}


def relay_client(service: AgentService) -> RelayClient:
    client = RelayClient(service.config.township_address, village_outbox(service), service.signer, service.clock,
                         tls=service.config.township_tls())
    service.on_recorded = client.wake
    return client


@dataclass(frozen=True)
class SyncView:
    """What the agent sees about syncing (the web UI's sync panel and `village-agent status`)."""

    waiting: int
    last_sync_at: str
    reachable: bool | None     # None: not tried yet in this process
    message: str


def sync_view(service: AgentService, client: RelayClient | None) -> SyncView:
    waiting = service.store.outbox_size()
    last_ms = int(service.store.get_meta("last_sync_at_ms", "0"))
    last = f"{from_unix_ms(last_ms).astimezone(SHANGHAI):%Y-%m-%d %H:%M}" if last_ms else "从未同步"
    if client is None:
        if service.store.recovering():
            return SyncView(waiting, last, None, "本机从备份恢复，须先与乡镇同步，取回备份之后的记录，才能继续登记")
        return SyncView(waiting, last, None, "未连接乡镇（后台同步未启动）")
    if client.last_error:
        return SyncView(waiting, last, False, plain_sync_text(client.last_error))
    result = client.last_result
    if result is None:
        return SyncView(waiting, last, None, "正在连接乡镇…")
    return SyncView(waiting, last, True, describe(result))


def describe(result: SyncResult) -> str:
    parts = [f"已确认上报 {result.confirmed} 条", f"收到乡镇下发 {result.pulled} 条"]
    if result.recovered:
        parts.insert(0, f"从乡镇取回本机备份之后的记录 {result.recovered} 条")
    if result.resent:
        parts.append(f"按乡镇要求重发 {result.resent} 条")
    if result.key_status in KEY_STATUS_ZH:
        parts.append(KEY_STATUS_ZH[result.key_status])
    for refusal in result.refusals[:3]:
        parts.append(f"台账第 {refusal.seq} 条记录被乡镇拒收：{refusal.message}")
    return plain_sync_text("；".join(parts))


def reachability_probe(client: RelayClient):
    """The UI's `SyncStatus` port, answered from the background loop's last pass."""
    # Not through `village_agent.ui.server`: the sync loop must not import the web framework.
    from village_agent.ui.reachability import Reachability

    def probe() -> Reachability:
        if client.last_error:
            return Reachability(False, plain_sync_text(client.last_error))
        if client.last_result is None:
            return Reachability(None, "正在连接乡镇…")
        return Reachability(True, describe(client.last_result))

    return probe


__all__ = ["relay_client", "village_outbox", "sync_view", "SyncView", "describe", "reachability_probe", "plain_sync_text"]
