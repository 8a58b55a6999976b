"""The township's hop to the county: its own signed chain up, and what the county sends back.

The township signs with a second key of its own (its *county link key*, enrolled at the county like a
village key is enrolled here), because its main chain is filtered per village on the way down and the
county must see every link of the chain it receives. Everything rides on the shared relay:
`shared.relay.sql_outbox.SqlOutbox` is the outbox and `shared.relay.client.RelayClient` the sync loop,
with the same receipts, gaps, resume and backoff as the village hop.

`fold()` is the projection of what came back, run beside the intake:
* a receipt for an escalation stops the township hop and starts its replica of the county hop at the
  county's receipt time (`HandlingService.record_escalated`);
* county decisions, clock changes and 督办 notices are applied to the township's matters, each in
  one transaction with the row that marks it folded, so a crash never applies one twice;
* village keys revoked here after they were announced to the county are announced revoked.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from shared.calendar import parse_override_toml
from shared.clock import Clock, from_unix_ms, to_unix_ms
from shared.deadline_watch.calendar_follower import CalendarFollower, stamp_key
from shared.domain.deadlines import HopClock, StopReason
from shared.domain.handling import Stage
from shared.domain.limits import Limit, LimitUnit
from shared.domain.personal_data import refuse_personal_data
from shared.errors import CalendarError, DeadlineError, HandlingError
from shared.relay.client import ClientLimits, RelayClient
from shared.relay.ports import KeyState
from shared.relay.sql_outbox import PulledRecord, SqlOutbox
from shared.relay.tls import ClientTls
from shared.signing import Signer
from shared.wire.v1 import records_pb2
from shared.wire_views import suspension_from_wire
from town_center.errors import UnknownMatter
from town_center.handling import COUNTY_HOP, HandlingService
from town_center.store import TownStore
from town_center.store.matter_tables import county_notice, town_matter
from town_center.store.tables import agent_key, county_up

__all__ = ["CountyLink", "LinkSettings", "LINK_META", "LinkStatus"]

log = logging.getLogger(__name__)

LINK_META = "county_link"
# The county's working-calendar override file as last received (signed `calendar_update`).
COUNTY_CALENDAR_META = "county_calendar_toml"
CALENDAR_PROBLEM_META = "county_calendar_problem"   # why the last one could not be used ("" when fine)
_ANNOUNCED = "announced:"
_REVOKED = "announced_revoked:"
_KEY_STATUS_ZH = {1: "接入申请待县级审批", 2: "已接入", 3: "接入密钥已被县级吊销", 4: "已被县级隔离（发现分叉）"}
_LIMIT_UNITS = {records_pb2.LIMIT_UNIT_WORKING_DAYS: LimitUnit.WORKING_DAYS,
                records_pb2.LIMIT_UNIT_NATURAL_DAYS: LimitUnit.NATURAL_DAYS,
                records_pb2.LIMIT_UNIT_OFFICE_MINUTES: LimitUnit.OFFICE_MINUTES}


@dataclass(frozen=True)
class LinkSettings:
    """What `town-center county link` records: where the county is and which key it signs with;
    with `county_ca_pem`, the link is TLS (the CA inline: it is public, and travels with the database);
    with a client certificate and key (paths: a private key never goes into the database), mutual TLS."""

    address: str
    county_key_id: str
    county_public_key: bytes
    township_code: str
    township_name: str
    link_key_id: str
    county_ca_pem: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""
    tls_server_name: str = ""

    def to_json(self) -> str:
        return json.dumps({"address": self.address, "county_key_id": self.county_key_id,
                           "county_public_key": self.county_public_key.hex(), "township_code": self.township_code,
                           "township_name": self.township_name, "link_key_id": self.link_key_id,
                           "county_ca_pem": self.county_ca_pem, "client_cert_file": self.client_cert_file,
                           "client_key_file": self.client_key_file, "tls_server_name": self.tls_server_name},
                          ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> LinkSettings:
        d = json.loads(text)
        # The TLS fields came later: settings recorded before them load as a plain-text link.
        return cls(d["address"], d["county_key_id"], bytes.fromhex(d["county_public_key"]), d["township_code"],
                   d["township_name"], d["link_key_id"], d.get("county_ca_pem", ""), d.get("client_cert_file", ""),
                   d.get("client_key_file", ""), d.get("tls_server_name", ""))

    def client_tls(self) -> ClientTls | None:
        """The checked TLS settings for the link, or None for plain text; raises `TlsConfigError`."""
        if not self.county_ca_pem:
            return None
        return ClientTls.from_pem(self.county_ca_pem, cert_file=self.client_cert_file or None,
                                  key_file=self.client_key_file or None, server_name=self.tls_server_name,
                                  source="县级 CA 证书（county link 登记）")


@dataclass(frozen=True)
class LinkStatus:
    queued: int
    oldest_queued_at: dt.datetime | None
    last_error: str
    key_status: str
    open_notices: int
    calendar_problem: str = ""


class CountyLink:
    def __init__(self, store: TownStore, handling: HandlingService, signer: Signer, settings: LinkSettings,
                 clock: Clock, calendar_follower: CalendarFollower | None = None) -> None:
        if signer.key_id != settings.link_key_id:
            raise HandlingError("乡镇接入县级所用的密钥与登记的不符，请检查 county_link.key")
        self.store = store
        self.handling = handling
        self.signer = signer
        self.settings = settings
        self.clock = clock
        self.calendar_follower = calendar_follower
        self.township_code = settings.township_code
        self.county_public_key = settings.county_public_key
        self.county_key_id = settings.county_key_id
        self.outbox = SqlOutbox(store.engine, county_up, own_key_id=signer.key_id, receiver_key_id=settings.county_key_id,
                                receiver_public_key=settings.county_public_key)
        self.client: RelayClient | None = None
        self._fold_lock = threading.Lock()
        self.ensure_enrollment()

    # ------------------------------------------------------------ the chain up

    def ensure_enrollment(self) -> None:
        """Seq 1 of the link chain is its self-signed enrollment, as for a village device."""
        if self.outbox.tip().seq:
            return
        record = records_pb2.Record()
        body = record.key_enrollment_requested
        body.public_key, body.role = self.signer.public_key, records_pb2.KEY_ROLE_TOWNSHIP
        body.holder_name, body.township_code = self.settings.township_name, self.settings.township_code
        with self.store.engine.begin() as conn:
            if self.outbox.tip(conn).seq == 0:
                self.outbox.append_in(conn, self.signer, record, now_ms=to_unix_ms(self.clock.now()))

    def append_in(self, conn: Connection, record: records_pb2.Record, *, now_ms: int) -> None:
        # The county verifies village signatures with keys this township vouched for: announce each
        # signing device's key (once) before the first record that carries its envelopes. A rotated
        # laptop key signs the later hand-over and sign-off, so those keys are announced too.
        if record.HasField("escalation"):
            author = conn.execute(select(town_matter.c.author_key_id)
                                  .where(town_matter.c.matter_id == record.escalation.matter_id)).scalar()
            if author:
                self._announce_village_key_in(conn, author, now_ms)
        if record.HasField("village_records_forwarded"):
            for env in record.village_records_forwarded.village_envelopes:
                self._announce_village_key_in(conn, env.key_id, now_ms)
        self.outbox.append_in(conn, self.signer, record, now_ms=now_ms)

    def _announce_village_key_in(self, conn: Connection, key_id: str, now_ms: int) -> None:
        if self.store.get_meta_in(conn, _ANNOUNCED + key_id):
            return
        key = conn.execute(select(agent_key).where(agent_key.c.key_id == key_id)).first()
        if key is None:
            return
        record = records_pb2.Record()
        body = record.key_approved
        body.key_id, body.public_key, body.role = key.key_id, bytes(key.public_key), records_pb2.KEY_ROLE_VILLAGE_AGENT
        body.approved_by, body.village_code = key.status_changed_by or "township", key.village_code
        body.township_code = self.township_code
        self.outbox.append_in(conn, self.signer, record, now_ms=now_ms)
        self.store.set_meta_in(conn, _ANNOUNCED + key_id, str(now_ms))

    def announce_revocations(self) -> int:
        """Village keys revoked here after they were announced go up as revoked (at the township's decision)."""
        count = 0
        with self.store.engine.connect() as conn:
            revoked = conn.execute(select(agent_key.c.key_id, agent_key.c.last_valid_seq, agent_key.c.status_changed_at_ms,
                                          agent_key.c.status_reason, agent_key.c.status_changed_by)
                                   .where(agent_key.c.state == KeyState.REVOKED.value)).all()
        for r in revoked:
            if not self.store.get_meta(_ANNOUNCED + r.key_id) or self.store.get_meta(_REVOKED + r.key_id):
                continue
            with self.store.engine.begin() as conn:
                if self.store.get_meta_in(conn, _REVOKED + r.key_id):
                    continue
                record = records_pb2.Record()
                body = record.key_revoked
                body.key_id, body.effective_at_ms, body.last_valid_seq = r.key_id, int(r.status_changed_at_ms), int(r.last_valid_seq)
                body.reason, body.revoked_by = r.status_reason, r.status_changed_by
                self.outbox.append_in(conn, self.signer, record, now_ms=to_unix_ms(self.clock.now()))
                self.store.set_meta_in(conn, _REVOKED + r.key_id, str(to_unix_ms(self.clock.now())))
                count += 1
        return count

    # ------------------------------------------------------------ the sync loop

    def make_client(self, *, limits: ClientLimits | None = None) -> RelayClient:
        self.client = RelayClient(self.settings.address, self.outbox, self.signer, self.clock,
                                  limits=limits or ClientLimits(idle_poll_s=5.0), peer_label_zh="县级服务器",
                                  tls=self.settings.client_tls())
        return self.client

    def wake(self) -> None:
        if self.client is not None:
            self.client.wake()

    def status(self) -> LinkStatus:
        oldest = self.outbox.oldest_pending_ms()
        result = self.client.last_result if self.client is not None else None
        key_status = _KEY_STATUS_ZH.get(int(result.key_status), "") if result is not None else ""
        with self.store.engine.connect() as conn:
            open_notices = len(conn.execute(select(county_notice.c.notice_id)
                                            .where(county_notice.c.acknowledged_at_ms.is_(None))).all())
        error = self.client.last_error if self.client is not None else ""
        if not error and result is not None and result.refusals:
            # Reachable but refusing (a revoked or quarantined link key, a bad record): say why.
            error = f"县级拒收：{result.refusals[0].message}"
        return LinkStatus(self.outbox.pending_count(), from_unix_ms(oldest) if oldest else None, error, key_status,
                          open_notices, self.store.get_meta(CALENDAR_PROBLEM_META))

    # ------------------------------------------------------------ folding what came back

    def fold(self) -> int:
        """Apply held receipts and pulled county records; returns how many were folded."""
        with self._fold_lock:
            done = self._fold_receipts() + self._fold_inbox()
            self.announce_revocations()
        return done

    def _fold_receipts(self) -> int:
        done = 0
        for held in self.outbox.unapplied_receipts():

            def mark(conn: Connection, seq: int = held.seq) -> bool:
                return self.outbox.mark_receipt_applied(conn, seq)

            if held.body_kind != "escalation":
                with self.store.engine.begin() as conn:
                    mark(conn)
                done += 1
                continue
            try:
                self.handling.record_escalated(held.matter_id, county_receipt_at=from_unix_ms(held.receipt_time_ms),
                                               also=mark)
            except (HandlingError, UnknownMatter) as exc:
                # Withdrawn meanwhile, or already folded by another process: keep the fact, fold it once.
                with self.store.engine.begin() as conn:
                    if mark(conn):
                        self.handling.note_from_county(conn, held.matter_id, held.receipt_time_ms, "county_receipt",
                                                       f"县级已签收上报件（未改变本件状态：{exc}）")
            done += 1
        return done

    def _fold_inbox(self) -> int:
        done = 0
        for pulled in self.outbox.unapplied_inbox():
            try:
                self._apply(pulled)
            except _AlreadyFolded:
                pass   # another process folded it first
            except _NotYet:
                continue   # left unapplied: the next pass tries it again
            except (HandlingError, DeadlineError, UnknownMatter) as exc:
                matter_id = _matter_id(pulled.record)
                with self.store.engine.begin() as conn:
                    if self.outbox.mark_inbox_applied(conn, pulled.id):
                        noted = self.handling.note_from_county(conn, matter_id, to_unix_ms(self.clock.now()),
                                                               "county_not_applied", f"县级记录未能应用：{exc}")
                        if not noted:
                            log.warning("county record %s not applied (matter %s): %s", pulled.record.WhichOneof("body"),
                                        matter_id or "-", exc)
            done += 1
        return done

    def _apply(self, pulled: PulledRecord) -> None:
        record, kind = pulled.record, pulled.record.WhichOneof("body")

        def mark(conn: Connection) -> None:
            self._marked(conn, pulled.id)

        if kind == "decision":
            body = record.decision
            if body.outcome == records_pb2.DECISION_OUTCOME_NEEDS_MATERIALS:
                self.handling.record_county_needs_materials(body.matter_id, list(body.missing_materials), body.reason,
                                                            also=mark)
            elif body.outcome in (records_pb2.DECISION_OUTCOME_APPROVED, records_pb2.DECISION_OUTCOME_REFUSED):
                approved = body.outcome == records_pb2.DECISION_OUTCOME_APPROVED
                summary = body.reason or ("县级审批通过" if approved else "县级不予批准")
                self.handling.record_county_decision(body.matter_id, approved=approved, summary=summary, also=mark)
            else:
                raise HandlingError("县级决定的结果无法识别")
            return
        if kind == "hop_clock_changed" and record.hop_clock_changed.tier == records_pb2.TIER_COUNTY:
            self._follow_county_clock(record.hop_clock_changed, mark)
            return
        if kind == "supervision_notice":
            self._receive_notice(record.supervision_notice, pulled.id)
            return
        if kind == "calendar_update":
            self._take_calendar(record.calendar_update, mark)
            return
        if kind == "document_issued":
            # A county notice for one of our matters (the township hands it on): kept by its hashes, so
            # `town-center document verify` and /public/verify can check a paper of it.
            from shared.documents.adapters.sql import save_received
            from shared.documents.chain import received_from_record

            try:
                received = received_from_record(record.document_issued, issuer_name="",
                                                author_key_id=record.header.author_key_id, seq=int(record.header.seq))
            except ValueError:
                received = None
                log.warning("county document record without a number or with malformed hashes, not kept")
            with self.store.engine.begin() as conn:
                mark(conn)
                if received is not None:
                    save_received(conn, received, received_at_ms=to_unix_ms(self.clock.now()))
            return
        if kind == "assessment_settings":
            self._take_assessment_settings(record.assessment_settings, mark)
            return
        if kind == "status_update" and record.status_update.stage == records_pb2.STAGE_RETURNED:
            # The county did not take the escalation in (e.g. a village signature failed its check, or
            # the catalogues disagree): its hop never ran. The matter comes back to the township, whose
            # clock runs on, so it can be put right and escalated again; nothing is stranded.
            matter_id = record.status_update.matter_id
            matter = self.handling.page(matter_id).matter
            if matter.stage is Stage.ESCALATING and matter.escalation_sent_at is not None:
                # The county's receipt for this 上报 is not folded yet (another process may be folding
                # it now): the refusal waits for the next pass, so it is never folded before its receipt.
                raise _NotYet()
            clock = self.handling.deadlines.load_clock(matter_id, COUNTY_HOP)
            stopped = None
            if clock is not None and clock.is_open:
                # The replica started at the county's receipt time, which may be ahead of this clock.
                stopped = clock.stop(max(self.clock.now(), clock.last_event_at), StopReason.RETURNED)
            try:
                if matter.stage is Stage.ESCALATED:
                    self.handling.record_escalation_not_taken_in(matter_id, "县级：" + record.status_update.message,
                                                                 county_clock=stopped, also=mark)
                    return
                if stopped is not None:
                    self.handling.record_county_clock(matter_id, stopped, "县级：" + record.status_update.message,
                                                      also=mark)
                    return
            except _AlreadyFolded:
                return
        with self.store.engine.begin() as conn:
            mark(conn)   # raises _AlreadyFolded when another process folded it first
            if kind == "status_update" and record.status_update.message:
                self.handling.note_from_county(conn, record.status_update.matter_id, to_unix_ms(self.clock.now()),
                                               "county_status", "县级：" + record.status_update.message)

    def _marked(self, conn: Connection, inbox_id: int) -> None:
        if not self.outbox.mark_inbox_applied(conn, inbox_id):
            raise _AlreadyFolded()

    def _follow_county_clock(self, body: records_pb2.HopClockChanged, mark: Callable[[Connection], object]) -> None:
        clock = self.handling.deadlines.load_clock(body.matter_id, COUNTY_HOP)
        at = from_unix_ms(body.at_ms)
        if clock is None:
            raise HandlingError("尚未收到县级签收，无法跟随县级计时")
        change = body.change
        if change == records_pb2.CLOCK_CHANGE_STARTED:
            text = "县级开始计时"
            clock = clock if clock.start_at == at else HopClock.received(at, clock.limit, clock.statutory)
        elif change == records_pb2.CLOCK_CHANGE_SUSPENDED:
            why = suspension_from_wire(body.suspension_reason)
            text = "县级暂停计时：" + (body.reason or why.label_zh)
            clock = clock.suspend(at, why, body.reason)
        elif change == records_pb2.CLOCK_CHANGE_RESUMED:
            text, clock = "县级恢复计时", clock.resume(at)
        elif change == records_pb2.CLOCK_CHANGE_EXTENDED:
            limit = Limit(body.new_limit.amount, _LIMIT_UNITS[body.new_limit.unit])
            text = f"县级经批准延期至 {limit.describe_zh()}"
            clock = clock.extend(at, limit, approver=body.approver_id or "county", reason=body.reason,
                                 calendar=self.handling.calendar)
        elif change == records_pb2.CLOCK_CHANGE_STOPPED:
            text, clock = "县级停止计时：" + (body.reason or "已作出决定"), clock.stop(at, StopReason.DONE)
        else:
            raise HandlingError("县级计时变化无法识别")
        try:
            self.handling.record_county_clock(body.matter_id, clock, text, also=mark)
        except _AlreadyFolded:
            pass

    def _take_calendar(self, body: records_pb2.CalendarUpdate, mark: Callable[[Connection], object]) -> None:
        """The county's calendar override: checked, kept, and counted on from now on, so the county hop's
        replica here falls due exactly when the county's own clock does."""
        text: str | None = None
        try:
            text = bytes(body.override_toml).decode("utf-8")
            overrides = parse_override_toml(text, "县级下发的工作日历文件")
            problem = ""
        except (UnicodeDecodeError, CalendarError) as exc:
            # Signed by the county but unusable here (e.g. a newer format): keep counting on the calendar
            # in use, and say so where operators look, not only in the log.
            text, problem = None, f"县级下发的工作日历文件无法使用，仍按原工作日历计时：{exc}"[:500]
        try:
            with self.store.engine.begin() as conn:
                mark(conn)
                if text is not None:
                    self.store.set_meta_in(conn, COUNTY_CALENDAR_META, text)
                    self.store.set_meta_in(conn, stamp_key(COUNTY_CALENDAR_META), f"{body.set_by}|{body.set_at_ms}")
                self.store.set_meta_in(conn, CALENDAR_PROBLEM_META, problem)
        except _AlreadyFolded:
            return
        if text is None:
            log.warning("county calendar update refused: %s", problem)
            return
        if self.calendar_follower is not None:
            self.calendar_follower.take_up(text)
        log.info("county calendar override taken up (years %s, set by %s)", sorted(overrides), body.set_by)

    def _take_assessment_settings(self, body: records_pb2.AssessmentSettings, mark: Callable[[Connection], object]) -> None:
        """The county's 整改 deadline, score weights and 回访 sample rate replace the township's own
        (`docs/evaluation.md`); unusable ones are noted and the settings in force stay."""
        from shared.domain.evaluation import EvaluationError
        from town_center.evaluation import take_county_settings_in

        try:
            with self.store.engine.begin() as conn:
                mark(conn)
                take_county_settings_in(self.store, conn, body)
        except _AlreadyFolded:
            return
        except EvaluationError as exc:
            # Signed by the county but out of range here: folded once, the settings in force stay.
            try:
                with self.store.engine.begin() as conn:
                    mark(conn)
            except _AlreadyFolded:
                return
            log.warning("county assessment settings not taken: %s", exc)

    def _receive_notice(self, body: records_pb2.SupervisionNotice, inbox_id: int) -> None:
        now_ms = to_unix_ms(self.clock.now())
        with self.store.engine.begin() as conn:
            if not self.outbox.mark_inbox_applied(conn, inbox_id):
                return
            if conn.execute(select(county_notice.c.notice_id).where(county_notice.c.notice_id == body.notice_id)).first():
                return
            known = self.handling.note_from_county(
                conn, body.matter_id, now_ms, "county_supervision",
                f"县级督办通知：{body.message}（请在督办页面说明情况）")
            if not known:
                log.warning("督办 notice %s names unknown matter %s", body.notice_id, body.matter_id)
            conn.execute(insert(county_notice).values(
                notice_id=body.notice_id[:64], matter_id=body.matter_id[:64],
                hop_tier={records_pb2.TIER_COUNTY: "county", records_pb2.TIER_VILLAGE: "village"}.get(body.hop_tier, "township"),
                level=int(body.level), overdue_working_days=int(body.overdue_working_days), message=body.message[:1000],
                issued_at_ms=int(body.issued_at_ms), issued_by=body.issued_by[:64], received_at_ms=now_ms))

    # ------------------------------------------------------------ 督办 notices from the county

    def open_notices(self) -> list[dict[str, object]]:
        with self.store.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(county_notice).order_by(county_notice.c.acknowledged_at_ms.is_not(None), county_notice.c.issued_at_ms.desc()))]

    def acknowledge(self, notice_id: str, explanation: str, *, by: str) -> None:
        """Answer a county 督办 notice with an explanation, signed up the chain."""
        if not explanation.strip():
            raise HandlingError("请写明情况说明")
        refuse_personal_data(("情况说明", explanation))
        now_ms = to_unix_ms(self.clock.now())
        with self.store.engine.begin() as conn:
            self.store.lock_own_tip(conn, self.handling.signer.key_id)
            row = conn.execute(select(county_notice).where(county_notice.c.notice_id == notice_id).with_for_update()).first()
            if row is None:
                raise HandlingError(f"找不到督办通知 {notice_id}")
            if row.acknowledged_at_ms is not None:
                raise HandlingError("该督办通知已经回复过")
            conn.execute(update(county_notice).where(county_notice.c.notice_id == notice_id).values(
                acknowledged_at_ms=now_ms, acknowledged_by=by[:64], explanation=explanation.strip()[:1000]))
            record = records_pb2.Record()
            body = record.supervision_acknowledged
            body.notice_id, body.matter_id, body.explanation, body.acknowledged_by = (
                notice_id, row.matter_id, explanation.strip()[:1000], by[:64])
            self.outbox.append_in(conn, self.signer, record, now_ms=now_ms)
            self.handling.note_from_county(conn, row.matter_id, now_ms, "supervision_acknowledged",
                                           f"已回复县级督办：{explanation.strip()}")
        self.wake()


class _AlreadyFolded(Exception):
    """Another process folded this county record first; the surrounding transaction rolls back."""


class _NotYet(Exception):
    """This county record depends on something not folded yet (its escalation's receipt)."""


def _matter_id(record: records_pb2.Record) -> str:
    kind = record.WhichOneof("body")
    return str(getattr(getattr(record, kind), "matter_id", "")) if kind else ""
