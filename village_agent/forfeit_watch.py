"""The background check that forfeits missed appointments while `village-agent serve` runs.

预约服务制度: an appointment not kept 30 minutes after its time is forfeited and the villager is to be
contacted to rebook. The deadline lives in the appointment table, not here (DESIGN 9): this thread
only wakes `AgentService.forfeit_due_appointments` (the same path as the button and
`village-agent forfeit`) every `interval_s` seconds and once at start, so appointments missed while
the laptop was off are forfeited as soon as it serves again. The service reads the time from its
injected clock; the interval is only how often to look. Each appointment is forfeited exactly
once: the store refuses a second outcome inside the write transaction.
"""
from __future__ import annotations

import logging
import threading

from shared.clock import to_unix_ms
from shared.errors import SharedError
from village_agent.errors import AgentError
from village_agent.services import AgentService

__all__ = ["ForfeitWatch", "DEFAULT_INTERVAL_S", "forfeit_status_probe"]

log = logging.getLogger("village_agent.forfeit_watch")

DEFAULT_INTERVAL_S = 30.0


class ForfeitWatch:
    def __init__(self, service: AgentService, *, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.service = service
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_checked_ms = 0      # the service clock's time of the last completed check
        self.last_error = ""          # Chinese, shown in the UI; empty when the last check worked

    def check_once(self) -> list[str]:
        """One check: forfeit what is due now. Never raises; a failure is kept in `last_error`."""
        try:
            forfeited = self.service.forfeit_due_appointments()
        except (AgentError, SharedError) as exc:
            self.last_error = f"自动检查失约失败：{exc}"
            log.warning("forfeit check failed: %s", type(exc).__name__)
            return []
        except Exception:  # noqa: BLE001 - the watch must outlive any single bad check
            self.last_error = "自动检查失约失败（内部错误），将稍后重试"
            log.exception("forfeit check crashed")
            return []
        self.last_error = ""
        self.last_checked_ms = to_unix_ms(self.service.clock.now())
        if forfeited:
            # ids and counts only: never personal data
            log.info("forfeited %d appointment(s): %s", len(forfeited), ",".join(forfeited))
        return forfeited

    def run(self) -> None:
        while not self._stop.is_set():
            self.check_once()
            self._stop.wait(self.interval_s)

    def start(self) -> threading.Thread:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="forfeit-watch", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def forfeit_status_probe(watch: ForfeitWatch):  # type: ignore[no-untyped-def]
    """The UI's `ForfeitStatus` port, answered from the watch's last check."""
    from village_agent.ui.server import ForfeitCheck

    def probe() -> ForfeitCheck:
        return ForfeitCheck(watch.interval_s, watch.last_checked_ms, watch.last_error)

    return probe
