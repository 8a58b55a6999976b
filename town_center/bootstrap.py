"""Wiring for the township process: the only place that builds the store, the core and the server."""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from shared.calendar import WorkingCalendar
from shared.catalog import load_catalog
from shared.clock import Clock, SystemClock
from shared.db import reader_engine
from shared.deadline_watch.calendar_follower import CalendarFollower
from shared.deadline_watch.notify import LogNotifier, Notifier, OutboxRelay
from shared.deadline_watch.scheduler import DeadlineWatch, process_tag
from shared.deadline_watch.sealed_recipient import KeySeal
from shared.deadline_watch.store import DeadlineStore
from shared.domain.catalog import Catalog
from shared.envelope import GENESIS
from shared.keys import load_key_file, save_key_file
from shared.observability.metrics import MetricSources, OutboxDepth
from shared.relay.server import RelayCore, RelayLimits
from shared.relay.tls import ServerTls
from shared.serving import TierProcess, console_starter, run_tier
from shared.signing import Signer, key_id_for
from town_center.county_link import COUNTY_CALENDAR_META, LINK_META, CountyLink, LinkSettings
from town_center.errors import SetupError
from town_center.front_desk.service import FrontDesk, RegisterNames, build_front_desk, supervision_audience
from town_center.handling import COUNTY_HOP, TOWNSHIP_HOP, HandlingService
from town_center.intake import Intake
from town_center.matter_names import TownMatterNames
from town_center.services import TownServices, published_catalog
from town_center.store import TownStore, open_town_store
from town_center.store.matter_tables import town_matter
from town_center.supervision import SignedSupervisionRecorder

if TYPE_CHECKING:
    from shared.console.guard import WebSecurity  # the web stack only when a console runs

__all__ = ["TownApp", "build_app", "init_home", "serve", "KEY_FILE_NAME", "DB_FILE_NAME", "LINK_KEY_FILE_NAME",
           "default_db_url", "link_county", "load_link_signer", "metric_sources"]

log = logging.getLogger(__name__)

KEY_FILE_NAME = "town.key"
# The township's second key: it signs the township's own chain to the county (see county_link).
LINK_KEY_FILE_NAME = "county_link.key"
DB_FILE_NAME = "town.db"


@dataclass
class TownApp:
    store: TownStore
    signer: Signer
    core: RelayCore
    services: TownServices
    deadlines: DeadlineStore
    handling: HandlingService
    intake: Intake
    clock: Clock
    calendar_follower: CalendarFollower
    county_link: CountyLink | None = None
    front_desk: FrontDesk | None = None   # window intake, registers, appointments, AB posts (town_center.front_desk)

    def close(self) -> None:
        self.core.close()
        self.store.close()


def default_db_url(home: Path) -> str:
    return f"sqlite:///{home / DB_FILE_NAME}"


def build_app(db_url: str, signer: Signer, *, clock: Clock | None = None, limits: RelayLimits | None = None,
              calendar: WorkingCalendar | None = None, catalog: Catalog | None = None,
              link_signer: Signer | None = None) -> TownApp:
    """The township's parts. With `link_signer` and a recorded county link, the hop to the county too."""
    clock = clock or SystemClock()
    store = open_town_store(db_url)
    recorded = store.get_meta("town_key_id")
    if recorded and recorded != signer.key_id:
        store.close()
        raise SetupError(f"数据库属于另一个乡镇密钥（{recorded[:8]}…），与当前密钥 {signer.key_id[:8]}… 不符")
    if not recorded:
        store.set_meta("town_key_id", signer.key_id)
    if not store.get_meta(f"own_tip:{signer.key_id}"):
        # The chain tip row exists before the first signature, so it is always there to lock: two
        # processes signing their first township record serialize on it instead of colliding.
        try:
            store.set_meta(f"own_tip:{signer.key_id}", f"{GENESIS.seq}:{GENESIS.hash.hex()}")
        except IntegrityError:
            pass  # another process starting at the same moment made it
    core = RelayCore(signer=signer, ingest=store, keys=store, down=store, clock=clock, limits=limits)
    # Applicants' numbers in the SMS queue are sealed to the township key, like their details.
    deadlines = DeadlineStore(store.engine, calendar or WorkingCalendar(), recipient_seal=KeySeal.of(signer))
    follower = CalendarFollower(store.get_meta, COUNTY_CALENDAR_META, deadlines, clock, source="县级下发的工作日历文件",
                                after_recompute=lambda: deadlines.copy_due_dates(town_matter, TOWNSHIP_HOP))
    if calendar is None:
        deadlines.use_calendar(follower.saved_calendar())
    deadlines.create_schema()
    deadlines.seal_queued_numbers()
    handling = HandlingService(store, deadlines, signer, clock, catalog or published_catalog(store) or load_catalog())
    link = None
    settings_text = store.get_meta(LINK_META)
    if settings_text and link_signer is not None:
        link = CountyLink(store, handling, link_signer, LinkSettings.from_json(settings_text), clock, follower)
        handling.up = link
    town = TownApp(store, signer, core, TownServices(store, signer, clock), deadlines, handling,
                   Intake(handling), clock, follower, link)
    town.front_desk = build_front_desk(handling, town.intake, clock, township_code=link.township_code if link else "")
    return town


def link_county(db_url: str, link_signer: Signer, *, address: str, county_public_key: bytes, township_code: str,
                township_name: str, county_ca_pem: str = "", client_cert_file: str = "", client_key_file: str = "",
                tls_server_name: str = "") -> LinkSettings:
    """Record where the county is and the key it signs with (from its `county.pub`); with
    `county_ca_pem` the link uses TLS, with a client certificate and key also mutual TLS."""
    if len(county_public_key) != 32:
        raise SetupError("县级公钥应为 32 字节（64 位十六进制）")
    if not township_code.strip() or not township_name.strip():
        raise SetupError("请填写乡镇代码和名称")
    if (client_cert_file or client_key_file) and not county_ca_pem:
        raise SetupError("使用客户端证书（双向 TLS）时须同时用 --county-ca 指定县级 CA 证书")
    settings = LinkSettings(address, key_id_for(county_public_key), county_public_key, township_code.strip(),
                            township_name.strip(), link_signer.key_id, county_ca_pem,
                            str(Path(client_cert_file).resolve()) if client_cert_file else "",
                            str(Path(client_key_file).resolve()) if client_key_file else "", tls_server_name.strip())
    settings.client_tls()   # every file is checked now, not at the next start of serve
    store = open_town_store(db_url)
    try:
        held = store.get_meta(LINK_META)
        if held and LinkSettings.from_json(held).county_key_id != settings.county_key_id:
            raise SetupError("本乡镇已接入另一个县级中心；更换县级中心须先联系县级信息化人员")
        store.set_meta(LINK_META, settings.to_json())
    finally:
        store.close()
    return settings


def load_link_signer(home: Path, passphrase: str) -> Signer | None:
    path = home / LINK_KEY_FILE_NAME
    return load_key_file(path, passphrase) if path.exists() else None


def init_home(home: Path, passphrase: str, db_url: str | None = None) -> Signer:
    """Create the township key (encrypted) and the database; refuses to overwrite an existing key."""
    home.mkdir(parents=True, exist_ok=True)
    key_path = home / KEY_FILE_NAME
    signer = Signer.generate()
    save_key_file(key_path, signer, passphrase)
    if not (home / LINK_KEY_FILE_NAME).exists():
        save_key_file(home / LINK_KEY_FILE_NAME, Signer.generate(), passphrase)
    app = build_app(db_url or default_db_url(home), signer)
    app.close()
    return signer


def load_signer(home: Path, passphrase: str) -> Signer:
    key_path = home / KEY_FILE_NAME
    if not key_path.exists():
        raise SetupError(f"找不到乡镇密钥 {key_path}，请先运行 town-center init")
    return load_key_file(key_path, passphrase)


class Background:
    """What runs beside the gRPC server: the intake folding new village records into matters, and
    the deadline watch (warnings, overdue, 督办 exactly once; SMS and webhooks from its outbox)."""

    def __init__(self, app: TownApp, *, notifier: Notifier | None = None, intake_every_s: float = 1.0,
                 scan_every_s: float = 30.0) -> None:
        self.app = app
        relay = OutboxRelay(app.deadlines, notifier or LogNotifier(),
                            SignedSupervisionRecorder(app.services, supervision_audience(app.handling.audience_for)), owner=process_tag(),
                            names=RegisterNames(TownMatterNames(app.store.engine, lambda: app.handling.catalog)))
        self.watch = DeadlineWatch(app.deadlines, app.clock, relay=relay,
                                   scan_every_after=dt.timedelta(seconds=scan_every_s))
        self.county_client = app.county_link.make_client() if app.county_link is not None else None

        def saved() -> None:
            self.watch.wake()
            if app.county_link is not None:
                app.county_link.wake()

        app.handling.on_clock_saved = saved
        self._every = intake_every_s
        from town_center.evaluation_figures import FiguresPublisher
        self.figures = FiguresPublisher(app)
        self.quiet_s = 0.5
        # During pushes the intake still runs every second: it folds at most 250 records per
        # transaction and writers of the file queue first come, first served (docs/performance.md),
        # so pushes in flight go between its batches and matters show within seconds of receipt.
        self.max_defer_s = 1.0
        self.backlog_pause_s = 0.05
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._intake_loop, name="town-intake", daemon=True)

    def start(self) -> None:
        self.watch.start()
        self._thread.start()
        if self.county_client is not None:
            self.county_client.start()

    def _intake_loop(self) -> None:
        last_pass = time.monotonic()
        backlog = False
        while not self._stop.is_set():
            now = time.monotonic()
            # Villages pushing: receipts first; the projection runs beside them at least every
            # `max_defer_s`, so operators never wait long for a new matter.
            busy = now - self.app.core.last_push_monotonic < self.quiet_s
            folded = 0
            if not busy or now - last_pass >= self.max_defer_s or backlog:
                try:
                    self.app.handling.refresh_catalog()
                    self.app.calendar_follower.refresh()   # folded by another township process
                    folded = self.app.intake.run_once()
                    if folded:
                        self.watch.wake()
                    if self.app.front_desk is not None:
                        self.app.front_desk.start_due_absences()   # 顶岗 registered ahead begins on its first day
                    if self.app.county_link is not None and self.app.county_link.fold():
                        self.watch.wake()
                        self.app.county_link.wake()
                    # 好差评 counts up to the county and to each agent's laptop, at most every 15 minutes.
                    self.figures.run_due()
                except Exception:
                    log.exception("intake pass failed")
                last_pass = time.monotonic()
            # A pass that folded records ran while more arrived (a storm): the next one starts at
            # once, so a matter waits for at most about one pass (docs/performance.md, "Intake").
            backlog = folded > 0
            self._stop.wait(self.backlog_pause_s if backlog else self._every)

    def stop(self) -> None:
        self._stop.set()
        if self.county_client is not None:
            self.county_client.stop()
        self._thread.join(timeout=10)
        self.app.handling.on_clock_saved = None
        self.watch.shutdown(wait=True)


def metric_sources(app: TownApp) -> MetricSources:
    """What the township's `/metrics` reads: its villages' sync, its outbox to the county, its clocks."""

    def outboxes(conn: Connection) -> dict[str, OutboxDepth]:
        if app.county_link is None:
            return {}
        outbox = app.county_link.outbox
        return {"county": OutboxDepth(outbox.pending_count(conn), outbox.oldest_pending_ms(conn) or None)}

    return MetricSources("township", app.signer.key_id, app.clock, app.core.stats, reader_engine(app.store.engine),
                         app.store.peer_sync, app.deadlines, outboxes,
                         hops=(TOWNSHIP_HOP,) + ((COUNTY_HOP,) if app.county_link else ()))


def serve(app: TownApp, address: str, *, ready: threading.Event | None = None, port_file: Path | None = None,
          notifier: Notifier | None = None, console_address: str | None = None, secure_cookies: bool = False,
          tls: ServerTls | None = None, metrics_address: str | None = None, web_security: WebSecurity | None = None,
          metrics_hosts: tuple[str, ...] = ()) -> None:
    """Run until SIGTERM or SIGINT (see `shared.serving.run_tier`): the relay for villages with its
    health service, the intake, the deadline watch and the county link beside it; with
    `console_address` the operator console, with `metrics_address` `/metrics`; with `tls` the relay
    (and its health service) speaks TLS only."""
    process = TierProcess(app.core, Background(app, notifier=notifier), "乡镇中心已启动", "正在停止乡镇中心…",
                          "乡镇工作台网页已启动",
                          console_starter("town_center.console", app, console_address, secure_cookies=secure_cookies,
                                          security=web_security),
                          metric_sources(app), app.close)
    run_tier(process, address, ready=ready, port_file=port_file, console_address=console_address,
             metrics_address=metrics_address, tls=tls, metrics_hosts=metrics_hosts)
