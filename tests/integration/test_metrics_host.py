"""`/metrics` refuses a foreign `Host` exactly as the consoles do (`shared.console.guard.WebSecurity`):
a page elsewhere that rebinds its own name to the metrics port (DNS rebinding) reads nothing."""
from __future__ import annotations

import httpx
import pytest

from hub.bootstrap import metric_sources as county_sources
from shared.console.errors import WebSettingError
from shared.observability.metrics import MetricsServer, metrics_registry
from tests.county_fixtures import County

NEEDED_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy")


def _get(port: int, host: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Host": host}, timeout=5)


def test_the_metrics_port_refuses_a_foreign_host_in_chinese_and_answers_its_own_names(hub: County) -> None:
    sources = county_sources(hub.app)
    server = MetricsServer(metrics_registry(sources), "127.0.0.1:0", on_stop=sources.close)
    try:
        for forged in ("attacker.example", f"attacker.example:{server.port}", "192.168.1.50", ""):
            refused = _get(server.port, forged)
            assert refused.status_code == 400, forged
            assert "拒绝访问" in refused.text and "--allowed-host" in refused.text
            assert "quancheng_" not in refused.text and "attacker" not in refused.text
            assert all(name in refused.headers for name in NEEDED_HEADERS)
        for own in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", f"[::1]:{server.port}"):
            ok = _get(server.port, own)
            assert ok.status_code == 200, own
            assert "quancheng_process_info" in ok.text
    finally:
        server.stop()


def test_a_name_the_administrator_allows_is_scraped_and_other_names_still_are_not(hub: County) -> None:
    sources = county_sources(hub.app)
    server = MetricsServer(metrics_registry(sources), "127.0.0.1:0", on_stop=sources.close,
                           extra_hosts=["metrics.county.example.gov.cn"])
    try:
        assert _get(server.port, "metrics.county.example.gov.cn:9800").status_code == 200
        assert _get(server.port, "evil.county.example.gov.cn").status_code == 400
    finally:
        server.stop()


def test_a_malformed_allowed_name_is_refused_in_chinese_before_the_port_opens(hub: County) -> None:
    sources = county_sources(hub.app)
    try:
        with pytest.raises(WebSettingError, match="允许的服务器名称"):
            MetricsServer(metrics_registry(sources), "127.0.0.1:0", extra_hosts=["http://metrics.example/"])
    finally:
        sources.close()
