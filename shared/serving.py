"""The life of a township or county process: the gRPC relay with its health service, the work
beside it, the console pages and `/metrics`, then a clean stop on SIGTERM or SIGINT.

The order of the stop matters: health turns NOT_SERVING first and the port keeps answering for
`health_drain_s` (load balancers and the next tier's probes see it), then the pages and metrics close,
in-flight pushes get `grace_s` to finish, and only then does background work stop and the store
close, so no receipt is signed on a closed store.
"""
from __future__ import annotations

import importlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shared.observability.metrics import MetricSources, serve_metrics
from shared.relay.server import RelayCore, build_server_with_health
from shared.relay.tls import ServerTls, describe_link_security

__all__ = ["TierProcess", "Startable", "run_tier", "console_starter", "check_plaintext_allowed"]

log = logging.getLogger(__name__)


class Startable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class TierProcess:
    """What differs between the township and the county: names for the banners, the background
    work, how to build the console app, and what the metrics read."""

    core: RelayCore
    background: Startable
    started_zh: str                  # e.g. "乡镇中心已启动"
    stopping_zh: str                 # e.g. "正在停止乡镇中心…"
    console_zh: str                  # e.g. "乡镇工作台网页已启动"
    make_console: Callable[[], Any] | None   # returns a started console server with .port and .stop()
    metrics: MetricSources
    close: Callable[[], None]


def console_starter(module_name: str, app: Any, address: str | None, *, secure_cookies: bool,
                    security: Any = None) -> Callable[[], Any] | None:
    """What starts a tier's console (`hub.console`, `town_center.console`: each offers the same three
    functions); imported only when a console is wanted, so a headless server never loads the web stack.
    `security` is the console's `shared.console.guard.WebSecurity` (allowed host names, trusted
    proxies); without it, only what the listen address itself allows."""
    if not address:
        return None

    def start() -> Any:
        console = importlib.import_module(module_name)
        web = console.create_console_app(app, console.open_console_auth(app), secure_cookies=secure_cookies)
        return console.start_console_server(web, address, security=security)

    return start


def _is_loopback_host(host: str) -> bool:
    import ipaddress

    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_plaintext_allowed(address: str, tls: ServerTls | None, *, console_address: str | None = None,
                            secure_cookies: bool = False, insecure_plaintext: bool = False) -> None:
    """Refuse (`WebSettingError`, Chinese) to serve plain text off loopback unless the operator said
    `--insecure-plaintext`: the relay without TLS settings, or the console pages without HTTPS in
    front of them (`--secure-cookies` says a TLS proxy is there). On loopback nothing leaves the machine."""
    from shared.console.errors import WebSettingError

    if insecure_plaintext:
        return
    host = address.rpartition(":")[0] if ":" in address else address
    if tls is None and not _is_loopback_host(host):
        raise WebSettingError(
            f"拒绝启动：同步服务监听 {address}（不是本机地址），但没有配置 TLS 证书，记录将以明文在网络上传输。"
            "请用 --tls-cert 和 --tls-key 启用 TLS；确属可信内网、需要明文时，请加 --insecure-plaintext。")
    if console_address:
        console_host = console_address.rpartition(":")[0] if ":" in console_address else console_address
        if not secure_cookies and not _is_loopback_host(console_host):
            raise WebSettingError(
                f"拒绝启动：工作台网页监听 {console_address}（不是本机地址），但前面没有 HTTPS，登录密码将以明文传输。"
                "请让网页只监听本机、由 HTTPS 反向代理对外提供并加 --secure-cookies；确需明文时，请加 --insecure-plaintext。")


def _write_port_file(port_file: Path, port: int) -> None:
    tmp = port_file.with_name(port_file.name + ".tmp")
    tmp.write_text(str(port), encoding="utf-8")
    tmp.replace(port_file)


def run_tier(process: TierProcess, address: str, *, ready: threading.Event | None = None,
             port_file: Path | None = None, console_address: str | None = None, metrics_address: str | None = None,
             tls: ServerTls | None = None, grace_s: float = 5.0, health_drain_s: float = 0.5,
             stop_event: threading.Event | None = None, metrics_hosts: tuple[str, ...] = ()) -> None:
    """Run until SIGTERM/SIGINT (or `stop_event`, for callers off the main thread). `metrics_hosts`:
    the names besides its listen address `/metrics` answers to (`--allowed-host`)."""
    server, port, health = build_server_with_health(process.core, address, tls=tls)
    server.start()
    process.background.start()
    host = address.rsplit(":", 1)[0]
    print(f"{process.started_zh}，监听 {host}:{port}（密钥 {process.core.signer.key_id}）", flush=True)
    print(describe_link_security(host, tls), flush=True)
    console_server = None
    if console_address and process.make_console is not None:
        try:
            console_server = process.make_console()
        except RuntimeError as exc:
            # The relay matters more than the pages: keep it running and say so loudly.
            log.error("console not started: %s", exc)
            print(f"警告：{exc}（端口可能已被占用）；同步服务照常运行。可用 --console-listen 指定其他端口。", flush=True)
        else:
            console_host = console_address.rsplit(":", 1)[0]
            print(f"{process.console_zh}：http://{console_host}:{console_server.port}/", flush=True)
    metrics_server = serve_metrics(process.metrics, metrics_address, extra_hosts=metrics_hosts)
    if port_file is not None:
        _write_port_file(port_file, port)
    stopping = stop_event or threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stopping.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    if ready is not None:
        ready.set()
    stopping.wait()
    print(process.stopping_zh, flush=True)
    log.info("shutting down: health NOT_SERVING, draining calls for up to %.0f s", grace_s)
    if health is not None:
        health.enter_graceful_shutdown()
        # New calls are still accepted for a moment, so a polling probe (or the next tier's health
        # check) can see NOT_SERVING before the port stops answering.
        time.sleep(health_drain_s)
    if console_server is not None:
        console_server.stop()
    if metrics_server is not None:
        metrics_server.stop()
    server.stop(grace=grace_s).wait()
    process.background.stop()
    process.close()
    log.info("stopped")
