"""Wiring for the county process: the only place that builds the store, the core and the server."""
from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from hub.errors import SetupError
from hub.handling import COUNTY_HOP, CountyHandling
from hub.matter_names import CountyMatterNames
from hub.store import HubStore, open_hub_store
from hub.store.tables import county_matter
from shared.calendar import WorkingCalendar, parse_override_toml
from shared.catalog import load_catalog
from shared.clock import Clock, SystemClock, to_unix_ms
from shared.db import reader_engine
from shared.deadline_watch.calendar_follower import CalendarFollower, stamp_key
from shared.deadline_watch.notify import LogNotifier, Notifier, OutboxRelay
from shared.deadline_watch.scheduler import DeadlineWatch, process_tag
from shared.deadline_watch.store import DeadlineStore
from shared.domain.catalog import Catalog
from shared.envelope import GENESIS
from shared.errors import CalendarOverrideError
from shared.keys import load_key_file, save_key_file
from shared.observability.metrics import MetricSources
from shared.relay.server import RelayCore, RelayLimits
from shared.relay.tls import ServerTls
from shared.serving import TierProcess, console_starter, run_tier
from shared.signing import Signer
from shared.wire.v1 import records_pb2

if TYPE_CHECKING:
    from shared.console.guard import WebSecurity  # the web stack only when a console runs

__all__ = ["HubApp", "build_app", "init_home", "load_signer", "serve", "Background", "KEY_FILE_NAME", "DB_FILE_NAME",
           "PUBLIC_KEY_FILE_NAME", "default_db_url", "CALENDAR_META", "metric_sources"]

log = logging.getLogger(__name__)

KEY_FILE_NAME = "county.key"
PUBLIC_KEY_FILE_NAME = "county.pub"
DB_FILE_NAME = "county.db"
MAX_CALENDAR_BYTES = 64 * 1024
CALENDAR_META = "calendar_override_toml"


@dataclass
class HubApp:
    store: HubStore
    signer: Signer
    core: RelayCore
    deadlines: DeadlineStore
    handling: CountyHandling
    clock: Clock
    calendar_follower: CalendarFollower

    def close(self) -> None:
        self.core.close()
        self.store.close()

    def set_calendar_override(self, text: str, *, by: str) -> WorkingCalendar:
        """Check and keep the county's override file for coming years; deadlines count on it from now on,
        here and (signed, in the same transaction) at every township, whose county-hop replicas must
        fall due when the county's clocks do. A running `serve` takes it up on its next pass."""
        if len(text.encode("utf-8")) > MAX_CALENDAR_BYTES:
            # It travels signed to every township in one record: keep it the size of a calendar.
            raise CalendarOverrideError(f"工作日历文件超过 {MAX_CALENDAR_BYTES // 1024} KB，不像是工作日历文件，请核对")
        overrides = parse_override_toml(text, "上传的工作日历文件")
        now_ms = to_unix_ms(self.clock.now())
        record = records_pb2.Record()
        record.calendar_update.override_toml = text.encode("utf-8")
        record.calendar_update.set_by, record.calendar_update.set_at_ms = by[:64], now_ms
        with self.store.engine.begin() as conn:
            self.store.lock_own_tip(conn, self.signer.key_id)
            self.store.set_meta_in(conn, CALENDAR_META, text)
            self.store.set_meta_in(conn, stamp_key(CALENDAR_META), f"{by}|{now_ms}")
            self.store.publish_in(conn, self.signer, record, ["*"], now_ms=now_ms)
        calendar = self.calendar_follower.take_up(text)
        log.info("calendar override saved by %s (years %s) and sent to every township", by, sorted(overrides))
        return calendar


def default_db_url(home: Path) -> str:
    return f"sqlite:///{home / DB_FILE_NAME}"


def build_app(db_url: str, signer: Signer, *, clock: Clock | None = None, limits: RelayLimits | None = None,
              calendar: WorkingCalendar | None = None, catalog: Catalog | None = None) -> HubApp:
    clock = clock or SystemClock()
    store = open_hub_store(db_url, now_ms=lambda: to_unix_ms(clock.now()))
    recorded = store.get_meta("county_key_id")
    if recorded and recorded != signer.key_id:
        store.close()
        raise SetupError(f"数据库属于另一个县级密钥（{recorded[:8]}…），与当前密钥 {signer.key_id[:8]}… 不符")
    if not recorded:
        store.set_meta("county_key_id", signer.key_id)
    if not store.get_meta(f"own_tip:{signer.key_id}"):
        try:
            store.set_meta(f"own_tip:{signer.key_id}", f"{GENESIS.seq}:{GENESIS.hash.hex()}")
        except IntegrityError:
            pass  # another process starting at the same moment made it
    core = RelayCore(signer=signer, ingest=store, keys=store, down=store, clock=clock, limits=limits, tier_label_zh="县级",
                     enrolls_role=records_pb2.KEY_ROLE_TOWNSHIP)
    deadlines = DeadlineStore(store.engine, calendar or WorkingCalendar())
    follower = CalendarFollower(store.get_meta, CALENDAR_META, deadlines, clock, source="县级工作日历文件",
                                after_recompute=lambda: deadlines.copy_due_dates(county_matter, COUNTY_HOP))
    if calendar is None:
        deadlines.use_calendar(follower.saved_calendar())
    deadlines.create_schema()
    handling = CountyHandling(store, deadlines, signer, clock, catalog or load_catalog())
    return HubApp(store, signer, core, deadlines, handling, clock, follower)


def init_home(home: Path, passphrase: str, db_url: str | None = None) -> Signer:
    """Create the county key (encrypted), its public key file for townships, and the database."""
    home.mkdir(parents=True, exist_ok=True)
    key_path = home / KEY_FILE_NAME
    if key_path.exists():
        raise SetupError(f"县级密钥 {key_path} 已存在，不会覆盖")
    signer = Signer.generate()
    save_key_file(key_path, signer, passphrase)
    (home / PUBLIC_KEY_FILE_NAME).write_text(signer.public_key.hex() + "\n", encoding="utf-8")
    app = build_app(db_url or default_db_url(home), signer)
    app.close()
    return signer


def load_signer(home: Path, passphrase: str) -> Signer:
    key_path = home / KEY_FILE_NAME
    if not key_path.exists():
        raise SetupError(f"找不到县级密钥 {key_path}，请先运行 county-hub init")
    return load_key_file(key_path, passphrase)


class Background:
    """Beside the gRPC server: the intake folding township records into county matters, and the
    deadline watch over the county hop (warnings, overdue, 督办 exactly once)."""

    def __init__(self, app: HubApp, *, notifier: Notifier | None = None, intake_every_s: float = 0.5,
                 scan_every_s: float = 30.0) -> None:
        self.app = app
        from hub.evaluation import CountyStaffSupervisionRecorder

        # The county's own 督办 reaches its staff (`/staff-notices`), not only the log.
        relay = OutboxRelay(app.deadlines, notifier or LogNotifier(), CountyStaffSupervisionRecorder(app.store.engine, app.clock),
                            owner=process_tag(),
                            names=CountyMatterNames(app.store.engine, lambda: app.handling.catalog))
        self.watch = DeadlineWatch(app.deadlines, app.clock, relay=relay, scan_every_after=dt.timedelta(seconds=scan_every_s))
        app.handling.on_saved = self.watch.wake
        self._every = intake_every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hub-intake", daemon=True)

    def start(self) -> None:
        self.watch.start()
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.app.calendar_follower.refresh()   # a file saved by `county-hub calendar set` meanwhile
                self.app.handling.run_once()
            except Exception:
                log.exception("county intake pass failed")
            self._stop.wait(self._every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.app.handling.on_saved = None
        self.watch.shutdown(wait=True)


def metric_sources(app: HubApp) -> MetricSources:
    """What the county's `/metrics` reads: its townships' sync and the county hop's clocks."""
    return MetricSources("county", app.signer.key_id, app.clock, app.core.stats, reader_engine(app.store.engine),
                         app.store.peer_sync, app.deadlines, hops=(COUNTY_HOP,))


def serve(app: HubApp, address: str, *, ready: threading.Event | None = None, port_file: Path | None = None,
          notifier: Notifier | None = None, console_address: str | None = None, secure_cookies: bool = False,
          tls: ServerTls | None = None, metrics_address: str | None = None, web_security: WebSecurity | None = None,
          metrics_hosts: tuple[str, ...] = ()) -> None:
    """Run until SIGTERM or SIGINT (see `shared.serving.run_tier`); health reports NOT_SERVING while
    stopping. With `tls` the relay (and its health service) speaks TLS only; mutual TLS when it names
    a client CA. With `console_address` the tracking board, with `metrics_address` `/metrics`."""
    process = TierProcess(app.core, Background(app, notifier=notifier), "县政务服务中心已启动", "正在停止县政务服务中心…",
                          "县级跟踪看板已启动",
                          console_starter("hub.console", app, console_address, secure_cookies=secure_cookies,
                                          security=web_security),
                          metric_sources(app), app.close)
    run_tier(process, address, ready=ready, port_file=port_file, console_address=console_address,
             metrics_address=metrics_address, tls=tls, metrics_hosts=metrics_hosts)
