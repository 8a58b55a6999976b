"""The county's handling: 上报件 received from townships, decided, and tracked to the villager's sign-off.

Every change is one transaction: the county matter moves by an optimistic version check, its hop
clock is saved where the deadline watch reads it, the history gets a line, and the county signs the
record(s) that tell the township (decision, clock change, status), queued in its down-log for that
township's link key. The transitions are the pure `shared.domain.handling.HandledMatter` at tier
COUNTY; this module loads, verifies, saves and signs.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import Connection, and_, case, func, insert, or_, select, update

from hub.acts import Act, offered, permission_zh, state_zh
from hub.documents import CountyDocuments
from hub.dossier import Dossier, filing_of, material_names, read_dossier
from hub.errors import ConcurrentEditError, NotPermitted, UnknownMatter
from hub.store import HubStore, kept_counts, township_figures
from hub.store.tables import (
    county_dossier,
    county_event,
    county_matter,
    county_refusal,
    hub_intake_cursor,
    ingest_log,
    supervision_notice,
    township_key,
    tracked_matter,
    village_key,
)
from shared.calendar import WorkingCalendar
from shared.clock import Clock, from_unix_ms, to_unix_ms
from shared.deadline_watch.store import DeadlineStore, hop_deadline
from shared.domain.catalog import Catalog, CatalogItem, MatterKind, Tier
from shared.domain.deadlines import ClockState, ClockStatus, SuspensionReason, Thresholds
from shared.domain.handling import (
    Actor,
    HandledMatter,
    RefusalKind,
    Role,
    Stage,
    matter_from_json_dict,
    matter_to_json_dict,
)
from shared.domain.limits import Limit
from shared.domain.personal_data import refuse_personal_data
from shared.errors import HandlingError, SharedError
from shared.sealing import open_sealed
from shared.signing import Signer, is_valid
from shared.wire.v1 import records_pb2
from shared.wire_views import KIND_TO_WIRE, due_ms, hop_view, limit_to_wire, stage_to_wire, suspension_to_wire

__all__ = ["CountyHandling", "COUNTY_HOP", "Outcome", "CountyMatterView", "TrackedView", "MatterHistory", "RefusalEntry",
           "UNKNOWN_MATTER_ZH", "notice_status"]

log = logging.getLogger(__name__)

COUNTY_HOP = "county"
_BATCH = 500
_SYSTEM = Actor("county-system", Role.DIRECTOR)
# Never the id: a page, a notice or a log line shown to staff names the matter by what it is.
UNKNOWN_MATTER_ZH = "找不到县级办件：链接可能有误，或该件尚未上报到县级"


class Outcome:
    APPROVE = Act.APPROVE.value
    REFUSE = Act.REFUSE.value
    NEEDS_MATERIALS = Act.NEEDS_MATERIALS.value
    LABELS_ZH = {"approve": "批准", "refuse": "不予批准", "needs_materials": "需补正材料"}


@dataclass(frozen=True)
class BoardPage:
    """A page of the county board: its matters, the board's totals over every page (all, running,
    warning, overdue, elderly) and the cursor of the next page ("" on the last)."""

    views: list[CountyMatterView]
    totals: dict[str, int]
    next_after: str


@dataclass(frozen=True)
class CountyMatterView:
    matter_id: str
    township_code: str
    township_name: str
    village_code: str
    catalog_code: str
    catalog_name: str
    stage: Stage
    summary: str
    township_received_at: dt.datetime
    received_at: dt.datetime
    due_at: dt.datetime | None
    state: ClockState | None
    clock_status: ClockStatus | None
    township_hop: dict[str, int] | None
    outcome: str
    signed_off_at: dt.datetime | None
    rating: int
    version: int
    elderly_or_disabled: bool = False
    door_to_door: bool = False

    @property
    def reference_zh(self) -> str:
        """A short human reference for the matter (never its id): the township and the day it received it."""
        at = self.township_received_at.astimezone(_BEIJING)
        return f"{self.township_name or '乡镇'} {at.month}月{at.day}日 {at:%H:%M} 收件"


_BEIJING = dt.timezone(dt.timedelta(hours=8))


@dataclass(frozen=True)
class RefusalEntry:
    """One line of the county's 否定报备 register."""

    refused_at: dt.datetime
    matter_id: str
    township_code: str
    township_name: str
    catalog_name: str
    reason: str
    decided_by: str
    decided_by_role: Role | None
    approved_by: str
    major: bool


@dataclass(frozen=True)
class TrackedView:
    matter_id: str
    township_code: str
    village_code: str
    catalog_code: str
    kind: MatterKind | None
    stage: int
    township_due_at: dt.datetime | None
    overdue: bool
    message: str
    hops: list[dict[str, int]]


@dataclass(frozen=True)
class MatterHistory:
    view: CountyMatterView
    matter: HandledMatter
    events: list[tuple[dt.datetime, str, str, str]]
    item: CatalogItem | None
    dossier: Dossier | None = None


_KIND_FROM_WIRE: dict[int, MatterKind] = {v: k for k, v in KIND_TO_WIRE.items()}


_OPEN_STAGES = (Stage.IN_PROGRESS.value, Stage.WAITING_MATERIALS.value)


def _hop_dict(h: records_pb2.HopView) -> dict[str, int]:
    return {"tier": int(h.tier), "started_at_ms": int(h.started_at_ms), "due_at_ms": int(h.due_at_ms),
            "stopped_at_ms": int(h.stopped_at_ms), "state": int(h.state)}


class CountyHandling:
    def __init__(self, store: HubStore, deadlines: DeadlineStore, signer: Signer, clock: Clock, catalog: Catalog,
                 *, on_saved: Callable[[], None] | None = None) -> None:
        self.store = store
        self.deadlines = deadlines
        self.signer = signer
        self.clock = clock
        self.catalog = catalog
        self.on_saved = on_saved
        self._dossiers_checked = False
        self._figures_built_with = ""
        # The written documents an act issues (不予许可决定书, 补办件通知书, 延期告知书, 督办通知).
        self.documents: CountyDocuments | None = CountyDocuments(self)

    @property
    def calendar(self) -> WorkingCalendar:
        return self.deadlines.calendar

    @property
    def thresholds(self) -> Thresholds:
        return self.deadlines.thresholds

    def _now(self) -> dt.datetime:
        # Whole milliseconds: the instant kept here is exactly the one the signed records carry.
        return from_unix_ms(to_unix_ms(self.clock.now()))

    # ================================================================== intake of township records

    def run_once(self) -> int:
        """Fold every stored township record not yet folded; returns how many were folded."""
        if not self._dossiers_checked:
            self._backfill_dossiers()
        self._build_figures()
        applied = 0
        with self.store.engine.connect() as conn:
            authors = [(k, int(t)) for k, t in conn.execute(select(township_key.c.key_id, township_key.c.tip_seq))]
            done = {k: int(s) for k, s in conn.execute(select(hub_intake_cursor.c.author_key_id, hub_intake_cursor.c.seq))}
        for key_id, tip in authors:
            while done.get(key_id, 0) < tip:
                n, done[key_id] = self._author_batch(key_id)
                applied += n
                if n == 0:
                    break
        if applied:
            self._saved()
        return applied

    def _build_figures(self) -> None:
        """Fill the comparison's kept figures from every tracked matter after the upgrade that added
        them, and again when a new calendar file moves office time; here, before any status update is
        folded (nothing to read otherwise)."""
        calendar = self.calendar
        if self._figures_built_with == calendar.fingerprint:
            return
        with self.store.engine.connect() as conn:
            built = township_figures.is_built(conn, calendar)
        if not built:
            with self.store.engine.begin() as conn:
                n = township_figures.rebuild(conn, calendar)
            log.info("township comparison figures built from %d tracked matters", n)
        self._figures_built_with = calendar.fingerprint

    def _backfill_dossiers(self) -> None:
        """Matters taken in before the board kept the elderly/disabled flag get it from their escalation,
        once per process (a database upgraded in place keeps sorting them right)."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(county_matter.c.matter_id, county_matter.c.township_key_id,
                                       county_matter.c.escalation_seq, county_matter.c.township_code,
                                       county_matter.c.stage)
                                .outerjoin(county_dossier, county_dossier.c.matter_id == county_matter.c.matter_id)
                                .where(county_dossier.c.matter_id.is_(None))).all()
        for r in rows:
            try:
                with self.store.engine.begin() as conn:
                    escalation = self._escalation_record(conn, r.township_key_id, int(r.escalation_seq))
                    filed = filing_of(escalation) if escalation is not None else None
                    conn.execute(insert(county_dossier).values(
                        matter_id=r.matter_id, elderly_or_disabled=bool(filed and filed.applicant.elderly_or_disabled),
                        door_to_door=bool(filed and filed.door_to_door)))
                    if filed and filed.applicant.elderly_or_disabled:
                        # Counted (by the migration's back-fill) as not flagged until now.
                        kept_counts.move(conn, add=(r.township_code, r.stage, True), remove=(r.township_code, r.stage, False))
            except Exception:
                log.warning("dossier flags of a county matter not backfilled", exc_info=True)
        self._dossiers_checked = True

    def _escalation_record(self, conn: Connection, township_key_id: str, seq: int) -> records_pb2.Escalation | None:
        payload = conn.execute(select(ingest_log.c.payload).where(ingest_log.c.author_key_id == township_key_id,
                                                                  ingest_log.c.seq == seq)).scalar()
        if payload is None:
            return None
        record = records_pb2.Record.FromString(bytes(payload))
        return record.escalation if record.HasField("escalation") else None

    def _author_batch(self, key_id: str) -> tuple[int, int]:
        with self.store.engine.connect() as conn:
            exists = conn.execute(select(hub_intake_cursor.c.seq).where(hub_intake_cursor.c.author_key_id == key_id)).first()
        if exists is None:
            try:
                with self.store.engine.begin() as conn:
                    conn.execute(insert(hub_intake_cursor).values(author_key_id=key_id, seq=0))
            except Exception:  # noqa: BLE001 - another process made the row first
                pass
        with self.store.engine.begin() as conn:
            self.store.lock_own_tip(conn, self.signer.key_id)
            position = int(conn.execute(select(hub_intake_cursor.c.seq).where(hub_intake_cursor.c.author_key_id == key_id)
                                        .with_for_update()).scalar_one())
            code = conn.execute(select(township_key.c.township_code).where(township_key.c.key_id == key_id)).scalar() or ""
            rows = conn.execute(select(ingest_log.c.seq, ingest_log.c.payload, ingest_log.c.receipt_time_ms)
                                .where(ingest_log.c.author_key_id == key_id, ingest_log.c.seq > position)
                                .order_by(ingest_log.c.seq).limit(_BATCH)).all()
            for r in rows:
                record = records_pb2.Record.FromString(bytes(r.payload))   # verified before it was stored
                try:
                    with conn.begin_nested():
                        self._apply(conn, key_id, code, record, int(r.receipt_time_ms), int(r.seq))
                except Exception as exc:  # noqa: BLE001 - one record that cannot apply never holds back the rest
                    log.warning("township record %s/%d not applied: %s: %s", key_id[:8], int(r.seq),
                                exc.__class__.__name__, exc)
                    matter_id = _matter_id(record)
                    if matter_id and self._has_matter(conn, matter_id):
                        # Only our own Chinese reasons reach the page; anything else stays in the log.
                        why = str(exc) if isinstance(exc, SharedError) else "系统内部错误，已记入日志，请联系系统管理员"
                        self._event(conn, matter_id, int(r.receipt_time_ms), f"township:{code}", "not_applied",
                                    f"乡镇记录未能应用：{why}")
                position = int(r.seq)
            if rows:
                conn.execute(update(hub_intake_cursor).where(hub_intake_cursor.c.author_key_id == key_id).values(seq=position))
        return len(rows), position

    def _apply(self, conn: Connection, key_id: str, code: str, record: records_pb2.Record, receipt_ms: int, seq: int) -> None:
        kind = record.WhichOneof("body")
        if kind == "key_approved":
            self._village_key_vouched(conn, key_id, record.key_approved, receipt_ms)
        elif kind == "key_revoked":
            body = record.key_revoked
            conn.execute(update(village_key).where(village_key.c.key_id == body.key_id,
                                                   village_key.c.township_key_id == key_id)
                         .values(state="revoked", last_valid_seq=int(body.last_valid_seq)))
        elif kind == "escalation":
            self._escalation(conn, key_id, code, record.escalation, receipt_ms, seq)
        elif kind == "status_update":
            self._track(conn, key_id, code, record, receipt_ms, seq)
        elif kind == "village_records_forwarded":
            self._forwarded(conn, key_id, record.village_records_forwarded, receipt_ms)
        elif kind == "document_issued" and self.documents is not None:
            # A notice the township handed out: kept by its hashes, so the county can verify a paper of it.
            self.documents.take_in(conn, record.document_issued, key_id=key_id, seq=seq,
                                   received_at_ms=receipt_ms)
        elif kind == "materials_added":
            self._materials_from_township(conn, key_id, record.materials_added, receipt_ms)
        elif kind == "evaluation_figures":
            from hub.evaluation import keep_evaluation_figures
            keep_evaluation_figures(conn, code, record.evaluation_figures, receipt_ms)
        elif kind == "supervision_acknowledged":
            body = record.supervision_acknowledged
            moved = conn.execute(update(supervision_notice).where(
                supervision_notice.c.notice_id == body.notice_id, supervision_notice.c.township_key_id == key_id,
                supervision_notice.c.acknowledged_at_ms.is_(None)).values(
                acknowledged_at_ms=receipt_ms, acknowledged_by=body.acknowledged_by[:64],
                explanation=body.explanation[:1000])).rowcount
            if moved and self._has_matter(conn, body.matter_id):
                self._event(conn, body.matter_id, receipt_ms, f"township:{code}", "supervision_acknowledged",
                            f"乡镇回复督办：{body.explanation}")

    def _village_key_vouched(self, conn: Connection, township_key_id: str, body: records_pb2.KeyApproved, now_ms: int) -> None:
        pub = bytes(body.public_key)
        if len(pub) != 32 or body.role != records_pb2.KEY_ROLE_VILLAGE_AGENT:
            raise HandlingError("乡镇登记的村级密钥无效")
        held = conn.execute(select(village_key).where(village_key.c.key_id == body.key_id)).first()
        if held is not None:
            if held.township_key_id != township_key_id:
                raise HandlingError("该村级密钥已由另一个乡镇登记")
            return
        conn.execute(insert(village_key).values(key_id=body.key_id[:32], public_key=pub, township_key_id=township_key_id,
                                                village_code=body.village_code[:32], state="approved", announced_at_ms=now_ms))

    # ------------------------------------------------------------------ 上报 escalation

    def _escalation(self, conn: Connection, key_id: str, code: str, body: records_pb2.Escalation, receipt_ms: int,
                    seq: int) -> None:
        problem, village_key_id, village_code = self._verify_escalation(conn, key_id, body)
        held = conn.execute(select(county_matter.c.township_key_id).where(county_matter.c.matter_id == body.matter_id)).first()
        if problem is None and held is not None:
            problem = "该办件已上报过，县级已受理，重复的上报未采用" if held.township_key_id == key_id else "另一个乡镇已上报同一办件"
            if held.township_key_id == key_id:
                self._event(conn, body.matter_id, receipt_ms, f"township:{code}", "duplicate", problem)
                return
        if problem is not None:
            log.warning("escalation of %s from township %s refused: %s", body.matter_id, code, problem)
            self._event(conn, body.matter_id[:64], receipt_ms, f"township:{code}", "escalation_refused", f"上报未受理：{problem}")
            update_record = records_pb2.Record()
            su = update_record.status_update
            su.matter_id, su.stage, su.catalog_code = body.matter_id, records_pb2.STAGE_RETURNED, body.catalog_code
            su.message = f"县级未受理上报：{problem}"
            self._publish(conn, update_record, key_id, code, receipt_ms)
            return
        item = self.catalog.item(body.catalog_code)
        received_at = from_unix_ms(receipt_ms)
        matter = HandledMatter.accepted_from_below(body.matter_id, body.catalog_code, Tier.COUNTY, received_at, item)
        conn.execute(insert(county_matter).values(
            matter_id=body.matter_id, township_key_id=key_id, township_code=body.township_code or code,
            village_code=village_code, village_key_id=village_key_id, catalog_code=body.catalog_code,
            stage=matter.stage.value, version=matter.version, state_json=_json(matter), summary=body.summary[:500],
            township_received_at_ms=int(body.township_received_at_ms), received_at_ms=receipt_ms, escalation_seq=seq,
            due_at_ms=due_ms(matter.clock, self.calendar) or None,
            sealed_applicant=bytes(body.sealed_applicant_for_county) or None, updated_at_ms=receipt_ms))
        filed = filing_of(body)
        conn.execute(insert(county_dossier).values(
            matter_id=body.matter_id, elderly_or_disabled=bool(filed and filed.applicant.elderly_or_disabled),
            door_to_door=bool(filed and filed.door_to_door)))
        kept_counts.move(conn, add=(body.township_code or code, matter.stage.value,
                                    bool(filed and filed.applicant.elderly_or_disabled)))
        assert matter.clock is not None
        self.deadlines.save_clock(matter.matter_id, COUNTY_HOP, matter.clock, now=received_at, responsible=None, conn=conn)
        self._event(conn, matter.matter_id, receipt_ms, f"township:{code}", "received",
                    f"收到乡镇上报（两级签名已核验），县级开始计时：{body.summary}")
        if self.documents is not None:
            self.documents.issue_accepted_in(conn, matter, now=received_at)
        self._publish(conn, self._clock_record(matter, records_pb2.CLOCK_CHANGE_STARTED, received_at, "县级已受理上报"),
                      key_id, code, receipt_ms)
        self._publish(conn, self._status(matter, received_at, "县级已受理上报，开始计时", row_code=village_code,
                                         catalog_code=body.catalog_code), key_id, code, receipt_ms)

    def _verify_escalation(self, conn: Connection, township_key_id: str, body: records_pb2.Escalation
                           ) -> tuple[str | None, str, str]:
        """(problem, village key, village code): both signatures and the vouching township checked."""
        if not body.matter_id or len(body.matter_id) > 64:
            return "上报记录缺少办件编号", "", ""
        if body.catalog_code not in self.catalog:
            return f"服务事项目录中没有事项 {body.catalog_code}", "", ""
        if self.catalog.item(body.catalog_code).decided_by is not Tier.COUNTY:
            return "该事项不由县级决定，无需上报", "", ""
        if not body.village_envelopes:
            return "上报记录未附村级原始签名记录", "", ""
        filed: records_pb2.RequestFiled | None = None
        village_key_id = ""
        for env in body.village_envelopes:
            vk = conn.execute(select(village_key).where(village_key.c.key_id == env.key_id)).first()
            if vk is None or vk.township_key_id != township_key_id:
                return "村级密钥未经本乡镇登记，无法核验村级签名", "", ""
            if not is_valid(bytes(vk.public_key), env.payload, env.signature):
                return "村级签名无效（记录可能被篡改）", "", ""
            try:
                record = records_pb2.Record.FromString(env.payload)
            except Exception:  # noqa: BLE001 - a payload that does not decode is refused, not crashed on
                return "村级记录无法解码", "", ""
            if record.header.author_key_id != env.key_id:
                return "村级记录的作者与签名密钥不符", "", ""
            if vk.state == "revoked" and record.header.seq > int(vk.last_valid_seq):
                return "村级密钥已吊销，吊销后的记录无效", "", ""
            if record.HasField("request_filed"):
                filed = record.request_filed
                village_key_id = env.key_id
                village_code = vk.village_code
        if filed is None:
            return "上报记录未附村级受理申请", "", ""
        if filed.matter_id != body.matter_id or filed.catalog_code != body.catalog_code:
            return "村级受理申请与上报的办件不符", "", ""
        return None, village_key_id, filed.village_code or village_code

    # ------------------------------------------------------------------ the village's records, passed on

    def _forwarded(self, conn: Connection, key_id: str, body: records_pb2.VillageRecordsForwarded, receipt_ms: int) -> None:
        row = self._row_for_update(conn, body.matter_id)
        if row.township_key_id != key_id:
            raise HandlingError("转来的村级记录所属办件不是该乡镇上报的")
        filer = conn.execute(select(village_key).where(village_key.c.key_id == row.village_key_id)).one()
        for env in body.village_envelopes:
            vk = filer if env.key_id == filer.key_id else conn.execute(select(village_key).where(
                village_key.c.key_id == env.key_id)).first()
            # The filing laptop, or its successor after a key rotation: a key the same township vouched
            # for, of the same village (the township checked the rotation line before forwarding).
            if vk is None or vk.township_key_id != key_id or vk.village_code != filer.village_code:
                raise HandlingError("转来的村级记录不是该村经乡镇登记的设备所签")
            if not is_valid(bytes(vk.public_key), env.payload, env.signature):
                raise HandlingError("转来的村级记录签名无效")
            record = records_pb2.Record.FromString(env.payload)
            kind = record.WhichOneof("body")
            if record.header.author_key_id != env.key_id or (
                    kind and getattr(getattr(record, kind), "matter_id", body.matter_id) != body.matter_id):
                raise HandlingError("转来的村级记录与所属办件或签名设备不符")
            if vk.state == "revoked" and record.header.seq > int(vk.last_valid_seq):
                raise HandlingError("村级密钥已吊销，吊销后的记录无效")
            matter = self._decode(row)
            now = from_unix_ms(receipt_ms)
            extra: dict[str, Any] = {}
            if kind == "result_handed_over":
                after, text = matter.handed_over(), "代办员已将县级决定结果交付申请人"
            elif kind == "signed_off":
                after = matter.signed_off()
                # The villager's rating is confidential at the township (docs/evaluation.md): the
                # county's history and row keep only that the matter was signed off.
                text = "申请人签收确认，本件办结"
                extra = {"signed_off_at_ms": receipt_ms}
            elif kind == "withdrawn":
                after, text = matter.withdrawn(at=now), f"申请人撤回：{record.withdrawn.reason}"
            else:
                continue
            self._commit(conn, row, matter, after, "village", kind or "", text, now, extra=extra, announce=True)
            row = self._row_for_update(conn, body.matter_id)

    def _materials_from_township(self, conn: Connection, key_id: str, body: records_pb2.MaterialsAdded, receipt_ms: int) -> None:
        row = self._row_for_update(conn, body.matter_id)
        if row.township_key_id != key_id:
            raise HandlingError("补正材料所属办件不是该乡镇上报的")
        matter = self._decode(row)
        now = from_unix_ms(receipt_ms)
        after = matter.materials_completed(actor=_SYSTEM, at=now)
        item = self.catalog.item(row.catalog_code) if row.catalog_code in self.catalog else None
        text = "乡镇报来补正材料：" + "、".join(material_names(item, list(body.material_ids))) + "，县级恢复计时"
        self._commit(conn, row, matter, after, f"township:{row.township_code}", "materials", text, now,
                     down=[self._clock_record(after, records_pb2.CLOCK_CHANGE_RESUMED, now, "补正材料已收到")])

    # ------------------------------------------------------------------ tracking every township matter

    def _track(self, conn: Connection, key_id: str, code: str, record: records_pb2.Record, receipt_ms: int, seq: int) -> None:
        body = record.status_update
        if not body.matter_id or len(body.matter_id) > 64:
            return
        hops = [_hop_dict(h) for h in body.hops]
        own = next((h for h in body.hops if h.tier == records_pb2.TIER_TOWNSHIP), None)
        township_code = record.audience.township_code or code
        values = dict(township_key_id=key_id, township_code=township_code,
                      village_code=(body.village_code or record.audience.village_code)[:32], catalog_code=body.catalog_code[:32],
                      kind=int(body.kind), stage=int(body.stage), hops_json=json.dumps(hops),
                      township_due_at_ms=int(own.due_at_ms) if own else 0,
                      township_stopped_at_ms=int(own.stopped_at_ms) if own else 0,
                      message=body.message[:500], status_seq=seq, updated_at_ms=receipt_ms)
        held = conn.execute(select(tracked_matter.c.status_seq, tracked_matter.c.township_key_id,
                                   tracked_matter.c.township_code, tracked_matter.c.hops_json)
                            .where(tracked_matter.c.matter_id == body.matter_id)).first()
        if held is None:
            conn.execute(insert(tracked_matter).values(matter_id=body.matter_id, **values))
            old = None
        elif held.township_key_id == key_id and int(held.status_seq) < seq:
            conn.execute(update(tracked_matter).where(tracked_matter.c.matter_id == body.matter_id).values(**values))
            old = (held.township_code, json.loads(held.hops_json))
        else:
            return
        # The comparison's kept figures change with the matter, in this transaction (hub.store.township_figures).
        township_figures.replace_matter(conn, body.matter_id, self.calendar, old=old, new=(township_code, hops),
                                        received_ms=receipt_ms)

    # ================================================================== staff actions

    def _item_or_none(self, code: str) -> CatalogItem | None:
        return self.catalog.item(code) if code in self.catalog else None

    def offered(self, h: MatterHistory, role: Role) -> frozenset[Act]:
        """The acts the console offers `role` on this matter now (the same rule the actions enforce)."""
        return offered(h.matter, h.item, role, past_due=self._past_due(h.matter))

    def _past_due(self, m: HandledMatter) -> bool:
        clock = m.clock
        if clock is None or clock.start_at is None or not clock.is_open:
            return False
        remaining = clock.remaining_at(self.clock.now(), self.calendar)
        return remaining is not None and remaining.overdue

    def _act(self, matter_id: str, act: Act, actor: Actor, expected_version: int | None,
             transition: Callable[[Connection, Any, HandledMatter, CatalogItem | None, dt.datetime], _Step]) -> HandledMatter:
        """One county act in one transaction: who may take it (role and authority), the version the page
        showed, the matter's state, then the transition, saved with its history line and signed records."""
        now = self._now()
        with self.store.engine.begin() as conn:
            self.store.lock_own_tip(conn, self.signer.key_id)
            row = self._row_for_update(conn, matter_id)
            matter = self._decode(row)
            item = self._item_or_none(row.catalog_code)
            refusal = permission_zh(act, actor.role, item)
            if refusal:
                log.info("county act %s on %s refused for %s (%s)", act.value, matter_id, actor.staff_id, actor.role.value)
                raise NotPermitted(refusal)
            if expected_version is not None and expected_version != matter.version:
                raise ConcurrentEditError("本件刚被其他人修改过，您的操作未保存，请刷新页面后重做")
            problem = state_zh(act, matter, past_due=self._past_due(matter))
            if problem:
                raise HandlingError(problem)
            step = transition(conn, row, _taken_up(matter, actor), item, now)
            self._commit(conn, row, matter, step.after, actor.staff_id, act.value, step.text, now, down=step.down,
                         extra=step.extra, announce=step.announce, message=step.message)
        self._saved()
        log.info("matter %s: %s by %s", matter_id, act.value, actor.staff_id)
        return step.after

    def _decision_record(self, matter_id: str, outcome: records_pb2.DecisionOutcome, reason: str, decided_by: str, now: dt.datetime,
                         missing: Sequence[str] = ()) -> records_pb2.Record:
        record = records_pb2.Record()
        d = record.decision
        d.matter_id, d.decided_by, d.decided_at_ms, d.tier = matter_id, decided_by, to_unix_ms(now), records_pb2.TIER_COUNTY
        d.outcome, d.reason = outcome, reason
        d.missing_materials.extend(missing)
        return record

    def _register_refusal(self, conn: Connection, row: Any, item: CatalogItem | None, reason: str, *, decided_by: str,
                          role: Role, approved_by: str, now: dt.datetime) -> None:
        """否定报备: every county 不予批准, in the decision's own transaction (004 篇6)."""
        conn.execute(insert(county_refusal).values(
            matter_id=row.matter_id, township_key_id=row.township_key_id, township_code=row.township_code,
            catalog_code=row.catalog_code, refused_at_ms=to_unix_ms(now), reason=reason, decided_by=decided_by[:64],
            decided_by_role=role.value, approved_by=approved_by[:64], major=bool(item is not None and item.major)))

    def decide(self, matter_id: str, outcome: str, *, actor: Actor, reason: str = "", missing: Sequence[str] = (),
               expected_version: int | None = None) -> HandledMatter:
        """批准 / 不予批准 (with a reason) / 需补正材料 (the county clock waits), signed down to the township.
        The director's act, or a delegated approver's; refusing a major matter is the director's alone."""
        if outcome not in Outcome.LABELS_ZH:
            raise HandlingError("请选择决定：批准、不予批准或需补正材料")
        refuse_personal_data(("决定理由", reason), *(("补正材料", m) for m in missing))
        act = Act(outcome)

        def transition(conn: Connection, row: Any, m: HandledMatter, item: CatalogItem | None, now: dt.datetime) -> _Step:
            assert item is not None   # permission_zh refused a matter the catalogue no longer holds
            if act is Act.NEEDS_MATERIALS:
                items = tuple(x.strip() for x in missing if x.strip())
                after = m.materials_requested(actor=actor, at=now, missing_materials=items)
                why = f"（{reason.strip()}）" if reason.strip() else ""
                text = "县级要求补正材料：" + "、".join(items) + why + "；补正期间县级不计时"
                decision = self._decision_record(m.matter_id, records_pb2.DECISION_OUTCOME_NEEDS_MATERIALS, reason.strip(),
                                                 actor.staff_id, now, items)
                clock_change = self._clock_record(after, records_pb2.CLOCK_CHANGE_SUSPENDED, now, text)
                return _Step(after, text, [decision, clock_change], extra={"outcome": outcome})
            approved = act is Act.APPROVE
            if not approved and not reason.strip():
                raise HandlingError("不予批准须写明理由")
            summary = reason.strip() or "经审核，准予批准"
            after = m.record_result(actor=actor, at=now, approved=approved, summary=summary, item=item)
            if not approved:
                self._register_refusal(conn, row, item, summary, decided_by=actor.staff_id, role=actor.role,
                                       approved_by=after.refusal_approved_by, now=now)
            return self._decided(after, approved, summary, actor.staff_id, now, outcome)

        return self._act(matter_id, act, actor, expected_version, transition)

    def _decided(self, after: HandledMatter, approved: bool, summary: str, decided_by: str, now: dt.datetime,
                 outcome: str) -> _Step:
        decision = self._decision_record(
            after.matter_id, records_pb2.DECISION_OUTCOME_APPROVED if approved else records_pb2.DECISION_OUTCOME_REFUSED,
            summary, decided_by, now)
        text = ("县级批准：" if approved else "县级不予批准：") + summary
        clock_change = self._clock_record(after, records_pb2.CLOCK_CHANGE_STOPPED, now, "县级已作出决定")
        return _Step(after, text, [decision, clock_change], extra={"outcome": outcome, "decided_at_ms": to_unix_ms(now)})

    def request_refusal(self, matter_id: str, reason: str, *, actor: Actor,
                        expected_version: int | None = None) -> HandledMatter:
        """A delegated approver asks the director to approve refusing a major or difficult matter."""
        def transition(conn: Connection, row: Any, m: HandledMatter, item: CatalogItem | None, now: dt.datetime) -> _Step:
            assert item is not None
            after = m.request_refusal(actor=actor, at=now, item=item, kind=RefusalKind.NOT_APPROVED, reason=reason)
            return _Step(after, f"申请不予批准（重大疑难事项，报中心主任审批）：{reason.strip()}", announce=False)

        return self._act(matter_id, Act.REQUEST_REFUSAL, actor, expected_version, transition)

    def decide_refusal_request(self, matter_id: str, *, approve: bool, actor: Actor,
                               expected_version: int | None = None) -> HandledMatter:
        """The director approves an approver's request to refuse (the refusal is then decided and
        registered: decided by the approver, approved by the director) or declines it."""

        def transition(conn: Connection, row: Any, m: HandledMatter, item: CatalogItem | None, now: dt.datetime) -> _Step:
            pending = m.pending_refusal
            assert pending is not None and item is not None
            if not approve:
                after = m.refusal_request_declined(actor=actor)
                return _Step(after, f"中心主任不同意不予批准申请（{pending.reason}），本件继续审批", announce=False)
            after = m.record_result(actor=actor, at=now, approved=False, summary=pending.reason, item=item,
                                    refusal_approved_by=actor.staff_id)
            self._register_refusal(conn, row, item, pending.reason, decided_by=pending.requested_by, role=Role.APPROVER,
                                   approved_by=actor.staff_id, now=now)
            step = self._decided(after, False, pending.reason, pending.requested_by, now, Outcome.REFUSE)
            return replace(step, text="中心主任批准不予批准申请。" + step.text)

        act = Act.APPROVE_REFUSAL if approve else Act.DECLINE_REFUSAL
        return self._act(matter_id, act, actor, expected_version, transition)

    # ------------------------------------------------------------------ the county hop's clock

    def suspend(self, matter_id: str, reason: SuspensionReason | str, note: str, *, actor: Actor,
                expected_version: int | None = None) -> HandledMatter:
        """中止计时 for a step the rules do not count (鉴定、专家评审、听证…, 003 第八条); the note says what
        is awaited and the time it needs, which the applicant must be told."""
        try:
            why = SuspensionReason(reason)
        except ValueError:
            raise HandlingError("请选择中止计时的事由") from None
        if why not in SuspensionReason.not_counted_steps():
            raise HandlingError("只有听证、招标、拍卖、检验、检测、检疫、鉴定、专家评审可以中止计时；"
                                "需要申请人补正材料的，请作出“需补正材料”决定")
        if not note.strip():
            raise HandlingError("请写明中止计时的具体事项和预计所需时间（须告知申请人）")

        def transition(conn: Connection, row: Any, m: HandledMatter, item: CatalogItem | None, now: dt.datetime) -> _Step:
            after = m.suspend(actor=actor, at=now, reason=why, note=note.strip()[:300])
            text = f"县级中止计时（{why.label_zh}，不计入办理时限）：{note.strip()}"
            record = self._clock_record(after, records_pb2.CLOCK_CHANGE_SUSPENDED, now, f"{why.label_zh}：{note.strip()}",
                                        suspension=why)
            return _Step(after, text, [record])

        return self._act(matter_id, Act.SUSPEND, actor, expected_version, transition)

    def resume(self, matter_id: str, *, actor: Actor, expected_version: int | None = None) -> HandledMatter:
        def transition(conn: Connection, row: Any, m: HandledMatter, item: CatalogItem | None, now: dt.datetime) -> _Step:
            assert m.clock is not None
            label = m.clock.suspensions[-1].reason.label_zh
            after = m.resume(actor=actor, at=now)
            due = after.clock.due_at(self.calendar) if after.clock is not None else None
            text = f"{label}结束，县级恢复计时" + (f"，办结期限为{_bj(due)}" if due is not None else "")
            return _Step(after, text, [self._clock_record(after, records_pb2.CLOCK_CHANGE_RESUMED, now, text)])

        return self._act(matter_id, Act.RESUME, actor, expected_version, transition)

    def _new_limit(self, m: HandledMatter, amount: int | str) -> Limit:
        assert m.clock is not None
        try:
            new_limit = Limit(int(amount), m.clock.limit.unit)
        except (TypeError, ValueError):
            raise HandlingError(f"请填写延期后的时限（正整数，单位：{m.clock.limit.unit.label_zh}）") from None
        if new_limit.amount <= m.clock.limit.amount:
            raise HandlingError(f"延期后的时限（{new_limit.describe_zh()}）应长于现时限（{m.clock.limit.describe_zh()}）")
        return new_limit

    def request_extension(self, matter_id: str, new_amount: int | str, reason: str, *, actor: Actor,
                          expected_version: int | None = None) -> HandledMatter:
        """A delegated approver asks for a longer county limit, within the statutory one; the director decides."""

        def transition(conn: Connection, row: Any, m: HandledMatter, item: CatalogItem | None, now: dt.datetime) -> _Step:
            assert m.clock is not None
            new_limit = self._new_limit(m, new_amount)
            after = m.request_extension(actor=actor, at=now, new_limit=new_limit, reason=reason)
            return _Step(after, f"申请延期：县级时限由{m.clock.limit.describe_zh()}延长至{new_limit.describe_zh()}，"
                                f"理由：{reason.strip()}（待中心主任批准）", announce=False)

        return self._act(matter_id, Act.REQUEST_EXTENSION, actor, expected_version, transition)

    def extend(self, matter_id: str, new_amount: int | str, reason: str, *, actor: Actor,
               expected_version: int | None = None) -> HandledMatter:
        """The director extends the county limit at once (his own request, approved), within the statutory limit."""

        def transition(conn: Connection, row: Any, m: HandledMatter, item: CatalogItem | None, now: dt.datetime) -> _Step:
            new_limit = self._new_limit(m, new_amount)
            asked = m.request_extension(actor=actor, at=now, new_limit=new_limit, reason=reason)
            return self._extended(m, asked.decide_extension(actor=actor, at=now, approve=True, calendar=self.calendar),
                                  item, actor, now)

        return self._act(matter_id, Act.EXTEND, actor, expected_version, transition)

    def decide_extension(self, matter_id: str, *, approve: bool, actor: Actor,
                         expected_version: int | None = None) -> HandledMatter:
        def transition(conn: Connection, row: Any, m: HandledMatter, item: CatalogItem | None, now: dt.datetime) -> _Step:
            request = m.pending_extension
            assert request is not None
            after = m.decide_extension(actor=actor, at=now, approve=approve, calendar=self.calendar)
            if not approve:
                return _Step(after, f"中心主任不批准延期申请（{request.new_limit.describe_zh()}，{request.reason}）",
                             announce=False)
            return self._extended(m, after, item, actor, now)

        act = Act.APPROVE_EXTENSION if approve else Act.DECLINE_EXTENSION
        return self._act(matter_id, act, actor, expected_version, transition)

    def _extended(self, before: HandledMatter, after: HandledMatter, item: CatalogItem | None, actor: Actor,
                  now: dt.datetime) -> _Step:
        """An approved extension: the signed clock change, and the written 延期告知 the township passes
        on to the applicant (003 第七条) — recorded as told once someone confirms it."""
        assert before.clock is not None and after.clock is not None
        extension = after.clock.extensions[-1]
        old, new = extension.previous_limit.describe_zh(), extension.new_limit.describe_zh()
        source = item.hop(Tier.COUNTY).statutory_source.label_zh if item is not None else "本县规定时限"
        due = after.clock.due_at(self.calendar)
        name = item.name if item is not None else "所办事项"
        text = (f"中心主任批准延期：县级时限由{old}延长至{new}（{source}{after.clock.statutory.describe_zh()}以内），"
                f"理由：{extension.reason}；须书面告知申请人")
        notice = (f"延期告知：申请人所办“{name}”在县级审批中因{extension.reason}，经县政务服务中心批准，"
                  f"县级办理时限由{old}延长至{new}" + (f"，预计{_bj(due)}前办结" if due is not None else "")
                  + "。请将本告知书面转告申请人。")
        record = self._clock_record(after, records_pb2.CLOCK_CHANGE_EXTENDED, now, extension.reason,
                                    approver=actor.staff_id, new_limit=extension.new_limit)
        return _Step(after, text, [record], message=notice)

    def extension_notified(self, matter_id: str, how: str, *, actor: Actor,
                           expected_version: int | None = None) -> HandledMatter:
        """Record that the applicant was told of the extension in writing, and how."""
        if not how.strip():
            raise HandlingError("请写明书面告知的方式（如：延期告知书经乡镇转交申请人签收）")
        refuse_personal_data(("告知方式", how))

        def transition(conn: Connection, row: Any, m: HandledMatter, item: CatalogItem | None, now: dt.datetime) -> _Step:
            after = m.applicant_notified_of_extension(at=now)
            return _Step(after, f"已书面告知申请人延期：{how.strip()[:300]}")

        return self._act(matter_id, Act.EXTENSION_NOTIFIED, actor, expected_version, transition)

    def issue_supervision(self, matter_id: str, message: str, *, actor: Actor, hop_tier: str = "township",
                          overdue_working_days: int = 0) -> str:
        """督办: a notice signed by the county, sent to the township responsible; returns its id."""
        refusal = permission_zh(Act.SUPERVISE, actor.role, None)
        if refusal:
            raise NotPermitted(refusal)
        if not message.strip():
            raise HandlingError("请填写督办内容")
        refuse_personal_data(("督办内容", message))
        now_ms = to_unix_ms(self.clock.now())
        notice_id = uuid.uuid4().hex
        with self.store.engine.begin() as conn:
            self.store.lock_own_tip(conn, self.signer.key_id)
            target = conn.execute(select(county_matter.c.township_key_id, county_matter.c.township_code)
                                  .where(county_matter.c.matter_id == matter_id)).first() or conn.execute(
                select(tracked_matter.c.township_key_id, tracked_matter.c.township_code)
                .where(tracked_matter.c.matter_id == matter_id)).first()
            if target is None:
                raise UnknownMatter("找不到该办件：县级既未收到其上报，也没有乡镇报来它的状态")
            record = records_pb2.Record()
            body = record.supervision_notice
            body.notice_id, body.matter_id, body.message = notice_id, matter_id, message.strip()[:1000]
            body.hop_tier = {"county": records_pb2.TIER_COUNTY, "village": records_pb2.TIER_VILLAGE}.get(
                hop_tier, records_pb2.TIER_TOWNSHIP)
            body.level = records_pb2.SUPERVISION_LEVEL_SUPERVISE
            body.overdue_working_days, body.issued_at_ms, body.issued_by = overdue_working_days, now_ms, actor.staff_id
            cursor = self._publish(conn, record, target.township_key_id, target.township_code, now_ms)
            conn.execute(insert(supervision_notice).values(
                notice_id=notice_id, matter_id=matter_id, township_key_id=target.township_key_id,
                township_code=target.township_code, hop_tier=hop_tier, level=int(body.level),
                overdue_working_days=overdue_working_days, message=body.message, issued_at_ms=now_ms,
                issued_by=actor.staff_id[:64], down_cursor=cursor))
            if self.documents is not None:
                self.documents.issue_supervision_in(
                    conn, matter_id=matter_id, township_key_id=target.township_key_id, message=body.message,
                    hop_tier=hop_tier, overdue_working_days=overdue_working_days, issued_by=actor.staff_id,
                    now=from_unix_ms(now_ms))
            if self._has_matter(conn, matter_id):
                self._event(conn, matter_id, now_ms, actor.staff_id, "supervision", f"县级督办：{body.message}")
        if self.documents is not None:
            self.documents.after_commit()
        log.info("督办 %s issued for %s by %s", notice_id, matter_id, actor.staff_id)
        return notice_id

    def overdue_working_days(self, t: TrackedView) -> int:
        """How many working days a township hop is past its due date (0 when it is not)."""
        if t.township_due_at is None:
            return 0
        calendar = self.calendar
        return max(0, calendar.working_days_between(calendar.local_date(t.township_due_at),
                                                    calendar.local_date(self.clock.now())))

    def supervise_overdue(self, matter_id: str, message: str, *, actor: Actor) -> str:
        """督办 from the overdue list (the console's 超期统计 and the API): the notice says how many
        working days the township hop is late. Returns the notice's id."""
        late = next(iter(self.tracked(overdue_only=True, matter_id=matter_id)), None)
        return self.issue_supervision(matter_id, message, actor=actor,
                                      overdue_working_days=self.overdue_working_days(late) if late is not None else 0)

    # ================================================================== the write path

    def _row_for_update(self, conn: Connection, matter_id: str) -> Any:
        row = conn.execute(select(county_matter).where(county_matter.c.matter_id == matter_id).with_for_update()).first()
        if row is None:
            raise UnknownMatter(UNKNOWN_MATTER_ZH)
        return row

    def _decode(self, row: Any) -> HandledMatter:
        return matter_from_json_dict(json.loads(row.state_json))

    def _has_matter(self, conn: Connection, matter_id: str) -> bool:
        return conn.execute(select(county_matter.c.matter_id).where(county_matter.c.matter_id == matter_id)).first() is not None

    def _commit(self, conn: Connection, row: Any, before: HandledMatter, after: HandledMatter, actor: str, action: str,
                text: str, now: dt.datetime, *, down: Sequence[records_pb2.Record] = (), extra: dict[str, Any] | None = None,
                announce: bool = True, message: str | None = None) -> None:
        now_ms = to_unix_ms(now)
        values: dict[str, Any] = {"stage": after.stage.value, "version": after.version, "state_json": _json(after),
                                  "due_at_ms": due_ms(after.clock, self.calendar) or None, "updated_at_ms": now_ms}
        if after.clock is not None and after.clock.start_at is not None:
            values["worst_state"] = max(int(row.worst_state), after.clock.state_at(now, self.calendar, self.thresholds).rank)
        values.update(extra or {})
        moved = conn.execute(update(county_matter).where(county_matter.c.matter_id == row.matter_id,
                                                         county_matter.c.version == row.version).values(**values)).rowcount
        if moved != 1:
            raise ConcurrentEditError("本件刚被其他人修改过，您的操作未保存，请刷新页面后重做")
        if after.stage.value != row.stage:
            elderly = bool(conn.execute(select(county_dossier.c.elderly_or_disabled)
                                        .where(county_dossier.c.matter_id == row.matter_id)).scalar())
            kept_counts.move(conn, add=(row.township_code, after.stage.value, elderly),
                             remove=(row.township_code, row.stage, elderly))
        self._event(conn, row.matter_id, now_ms, actor, action, text)
        if after.clock is not None and after.clock != before.clock:
            self.deadlines.save_clock(row.matter_id, COUNTY_HOP, after.clock, now=now, responsible=None, conn=conn)
        sign_ms = max(now_ms, to_unix_ms(self.clock.now()))
        for record in down:
            self._publish(conn, record, row.township_key_id, row.township_code, sign_ms)
        if announce:
            self._publish(conn, self._status(after, now, message or text, row_code=row.village_code,
                                             catalog_code=row.catalog_code),
                          row.township_key_id, row.township_code, sign_ms)
        if self.documents is not None:
            # In the act's own transaction: a rolled-back act leaves no document and no gap in the numbers.
            self.documents.issue_for(conn, row, before, after, action, now=now)

    def _publish(self, conn: Connection, record: records_pb2.Record, township_key_id: str, township_code: str,
                 now_ms: int) -> int:
        record.audience.key_ids.append(township_key_id)
        record.audience.township_code = township_code
        return self.store.publish_in(conn, self.signer, record, [township_key_id], now_ms=max(now_ms, to_unix_ms(self.clock.now())))

    def _event(self, conn: Connection, matter_id: str, at_ms: int, actor: str, action: str, text: str) -> None:
        conn.execute(insert(county_event).values(matter_id=matter_id[:64], at_ms=at_ms, actor=actor[:64],
                                                 action=action[:40], text_zh=text))

    def _clock_record(self, m: HandledMatter, change: records_pb2.ClockChange, at: dt.datetime, reason: str, *,
                      suspension: SuspensionReason = SuspensionReason.AWAITING_MATERIALS, approver: str = "",
                      new_limit: Limit | None = None) -> records_pb2.Record:
        """The county hop's clock change as the township follows it (`record_county_clock`)."""
        record = records_pb2.Record()
        body = record.hop_clock_changed
        body.matter_id, body.tier, body.change, body.at_ms = m.matter_id, records_pb2.TIER_COUNTY, change, to_unix_ms(at)
        body.reason = reason
        if change == records_pb2.CLOCK_CHANGE_SUSPENDED:
            body.suspension_reason = suspension_to_wire(suspension)
        if approver:
            body.approver_id = approver
        if new_limit is not None:
            body.new_limit.CopyFrom(limit_to_wire(new_limit))
        body.due_at_ms = due_ms(m.clock, self.calendar) if m.clock and m.clock.status is not ClockStatus.SUSPENDED else 0
        return record

    def _status(self, m: HandledMatter, now: dt.datetime, message: str, *, row_code: str, catalog_code: str) -> records_pb2.Record:
        record = records_pb2.Record()
        body = record.status_update
        body.matter_id, body.stage, body.kind = m.matter_id, stage_to_wire(m), records_pb2.MATTER_KIND_REPORTED
        body.catalog_code, body.village_code, body.message = catalog_code, row_code, message
        if m.clock is not None:
            body.hops.append(hop_view(Tier.COUNTY, m.clock, now, self.calendar, self.thresholds))
        return record

    def _saved(self) -> None:
        if self.documents is not None:
            self.documents.after_commit()
        if self.on_saved is not None:
            try:
                self.on_saved()
            except Exception:
                log.exception("deadline watch wake-up failed")

    # ================================================================== reads for the board

    def _view(self, row: Any, now: dt.datetime, names: dict[str, str], township_hops: dict[str, dict[str, int]],
              flags: dict[str, tuple[bool, bool]] | None = None) -> CountyMatterView:
        matter = self._decode(row)
        clock = matter.clock
        state = clock.state_at(now, self.calendar, self.thresholds) if clock is not None and clock.start_at else None
        return CountyMatterView(
            matter_id=row.matter_id, township_code=row.township_code, township_name=names.get(row.township_key_id, ""),
            village_code=row.village_code, catalog_code=row.catalog_code,
            catalog_name=self.catalog.item(row.catalog_code).name if row.catalog_code in self.catalog else row.catalog_code,
            stage=matter.stage, summary=row.summary, township_received_at=from_unix_ms(int(row.township_received_at_ms)),
            received_at=from_unix_ms(int(row.received_at_ms)),
            # From the clock on the calendar in use (a new override file moves it), not the stored copy.
            due_at=clock.due_at(self.calendar) if clock is not None and clock.start_at else None, state=state,
            clock_status=clock.status if clock is not None else None, township_hop=township_hops.get(row.matter_id),
            outcome=row.outcome, signed_off_at=from_unix_ms(int(row.signed_off_at_ms)) if row.signed_off_at_ms else None,
            rating=int(row.rating), version=int(row.version),
            elderly_or_disabled=(flags or {}).get(row.matter_id, (False, False))[0],
            door_to_door=(flags or {}).get(row.matter_id, (False, False))[1])

    def township_names(self) -> dict[str, str]:
        with self.store.engine.connect() as conn:
            return {k: n for k, n in conn.execute(select(township_key.c.key_id, township_key.c.holder_name))}

    def escalated(self, *, township_code: str | None = None, open_only: bool = False) -> list[CountyMatterView]:
        query = select(county_matter).order_by(county_matter.c.received_at_ms.desc(), county_matter.c.matter_id.desc())
        if township_code:
            query = query.where(county_matter.c.township_code == township_code)
        if open_only:
            query = query.where(county_matter.c.stage.in_([Stage.IN_PROGRESS.value, Stage.WAITING_MATERIALS.value]))
        now = self.clock.now()
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
            hops = self._township_hops(conn, [r.matter_id for r in rows])
            flags = self._flags(conn, [r.matter_id for r in rows])
        names = self.township_names()
        views = [self._view(r, now, names, hops, flags) for r in rows]
        # Elderly, sick or disabled applicants first (004: they are served first and at home); newest
        # first within each group, as received.
        views.sort(key=lambda v: not v.elderly_or_disabled)
        return views

    def escalated_page(self, *, township_code: str | None = None, open_only: bool = False, after: str = "",
                       page_size: int = 100) -> BoardPage:
        """One page of the board, newest first by (county receipt time, matter id), and the board's
        totals; `after` is a page's `next_after` (keyset paging: a page deep in a county of a million
        matters reads as little as the first). Elderly or disabled applicants first within the page."""
        m, h = county_matter.c, hop_deadline.c
        conditions = []
        if township_code:
            conditions.append(m.township_code == township_code)
        if open_only:
            conditions.append(m.stage.in_(_OPEN_STAGES))
        query = select(county_matter).where(*conditions).order_by(m.received_at_ms.desc(), m.matter_id.desc()).limit(page_size)
        at, _, last_id = (after or "").partition(":")
        if at.isdigit() and last_id and len(last_id) <= 64:
            query = query.where(or_(m.received_at_ms < int(at), and_(m.received_at_ms == int(at), m.matter_id < last_id)))
        now = self.clock.now()
        now_ms = to_unix_ms(now)
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
            hops = self._township_hops(conn, [r.matter_id for r in rows])
            flags = self._flags(conn, [r.matter_id for r in rows])
            # Kept as matters arrive and change stage (hub.store.kept_counts): no count over every matter.
            total, elderly = kept_counts.board_totals(conn, township_code=township_code or None,
                                                      stages=_OPEN_STAGES if open_only else None)
            if conditions:
                running = county_matter.join(hop_deadline, (h.matter_id == m.matter_id) & (h.hop == COUNTY_HOP))
                base = select(func.count()).select_from(running).where(h.status == ClockStatus.RUNNING.value, *conditions)
                counts = {
                    "running": int(conn.execute(base).scalar_one()),
                    "warning": int(conn.execute(base.where(h.warn_at_ms <= now_ms, h.due_at_ms >= now_ms)).scalar_one()),
                    "overdue": int(conn.execute(base.where(h.due_at_ms < now_ms)).scalar_one()),
                }
            else:
                # The whole county: the open-clock counts kept as clocks change (no scan of every clock).
                kept = self.deadlines.clock_counts(now, conn=conn)
                by_state = {state: kept.get((COUNTY_HOP, state), 0) for state in ("on_time", "warning", "overdue", "supervise")}
                counts = {"running": sum(by_state.values()), "warning": by_state["warning"],
                          "overdue": by_state["overdue"] + by_state["supervise"]}
        names = self.township_names()
        views = [self._view(r, now, names, hops, flags) for r in rows]
        views.sort(key=lambda v: not v.elderly_or_disabled)   # stable: newest first within each group
        next_after = f"{int(rows[-1].received_at_ms)}:{rows[-1].matter_id}" if len(rows) == page_size else ""
        return BoardPage(views, {"all": total, "elderly": elderly, **counts}, next_after)

    def _flags(self, conn: Connection, matter_ids: list[str]) -> dict[str, tuple[bool, bool]]:
        out: dict[str, tuple[bool, bool]] = {}
        for i in range(0, len(matter_ids), 500):
            for r in conn.execute(select(county_dossier).where(county_dossier.c.matter_id.in_(matter_ids[i:i + 500]))):
                out[r.matter_id] = (bool(r.elderly_or_disabled), bool(r.door_to_door))
        return out

    def _township_hops(self, conn: Connection, matter_ids: list[str]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for i in range(0, len(matter_ids), 500):
            for mid, hops_json in conn.execute(select(tracked_matter.c.matter_id, tracked_matter.c.hops_json)
                                               .where(tracked_matter.c.matter_id.in_(matter_ids[i:i + 500]))):
                own = [h for h in json.loads(hops_json) if h["tier"] == records_pb2.TIER_TOWNSHIP]
                if own:
                    out[mid] = own[0]
        return out

    def history(self, matter_id: str) -> MatterHistory:
        now = self.clock.now()
        with self.store.engine.connect() as conn:
            row = conn.execute(select(county_matter).where(county_matter.c.matter_id == matter_id)).first()
            if row is None:
                raise UnknownMatter(UNKNOWN_MATTER_ZH)
            hops = self._township_hops(conn, [matter_id])
            flags = self._flags(conn, [matter_id])
            events = [(from_unix_ms(int(e.at_ms)), e.actor, e.action, e.text_zh) for e in conn.execute(
                select(county_event).where(county_event.c.matter_id == matter_id).order_by(county_event.c.id))]
            escalation = self._escalation_record(conn, row.township_key_id, int(row.escalation_seq))
        item = self._item_or_none(row.catalog_code)
        dossier = read_dossier(escalation, item, self.signer) if escalation is not None else None
        if dossier is not None:
            # The signed filing is the source; the flags row only serves the board's sort.
            flags[matter_id] = (dossier.elderly_or_disabled, dossier.door_to_door)
        view = self._view(row, now, self.township_names(), hops, flags)
        return MatterHistory(view, self._decode(row), events, item, dossier)

    def authorization_image(self, matter_id: str) -> tuple[bytes, str] | None:
        """The villager's signature or the photo of the signed 委托书, when sealed to the county key."""
        h = self.history(matter_id)
        auth = h.dossier.authorization if h.dossier is not None else None
        if auth is None or not auth.has_image:
            return None
        return auth.image, auth.image_type

    def refusals(self) -> list[RefusalEntry]:
        """The county's 否定报备 register, newest first."""
        names = self.township_names()
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(county_refusal).order_by(county_refusal.c.refused_at_ms.desc(),
                                                                county_refusal.c.id.desc())).all()
        out = []
        for r in rows:
            item = self._item_or_none(r.catalog_code)
            try:
                role: Role | None = Role(r.decided_by_role)
            except ValueError:
                role = None
            out.append(RefusalEntry(from_unix_ms(int(r.refused_at_ms)), r.matter_id, r.township_code,
                                    names.get(r.township_key_id, ""), item.name if item is not None else "（目录中已无此事项）",
                                    r.reason, r.decided_by, role, r.approved_by, bool(r.major)))
        return out

    def refused_escalations(self) -> list[tuple[dt.datetime, str, str, str]]:
        with self.store.engine.connect() as conn:
            return [(from_unix_ms(int(e.at_ms)), e.matter_id, e.actor, e.text_zh) for e in conn.execute(
                select(county_event).where(county_event.c.action == "escalation_refused").order_by(county_event.c.id.desc()))]

    def tracked(self, *, township_code: str | None = None, overdue_only: bool = False, matter_id: str | None = None,
                limit: int | None = None) -> list[TrackedView]:
        """Township matters as last reported, earliest township due date first; `overdue_only` selects
        in SQL (a county of a million tracked matters is not read whole), `limit` caps the list."""
        now_ms = to_unix_ms(self.clock.now())
        t = tracked_matter.c
        query = select(tracked_matter).order_by(t.township_due_at_ms, t.matter_id)
        if township_code:
            query = query.where(t.township_code == township_code)
        if matter_id is not None:
            query = query.where(t.matter_id == matter_id)
        if overdue_only:
            # _township_overdue in SQL: stopped after its due instant, or still open past it.
            query = query.where(t.township_due_at_ms > 0, or_(
                and_(t.township_stopped_at_ms > 0, t.township_stopped_at_ms > t.township_due_at_ms),
                and_(t.township_stopped_at_ms == 0, t.township_due_at_ms < now_ms)))
        if limit is not None:
            query = query.limit(limit)
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = []
        for r in rows:
            overdue = _township_overdue(r, now_ms)
            if overdue_only and not overdue:
                continue
            out.append(TrackedView(r.matter_id, r.township_code, r.village_code, r.catalog_code,
                                   _KIND_FROM_WIRE.get(int(r.kind)), int(r.stage),
                                   from_unix_ms(int(r.township_due_at_ms)) if r.township_due_at_ms else None,
                                   overdue, r.message, json.loads(r.hops_json)))
        return out

    def tracked_hops(self) -> list[tuple[str, list[dict[str, int]]]]:
        """(township code, hops as the township signed them) of every tracked matter: the two columns
        the township comparison reads, without building a view per matter."""
        with self.store.engine.connect() as conn:
            return [(code, json.loads(hops)) for code, hops in conn.execute(
                select(tracked_matter.c.township_code, tracked_matter.c.hops_json))]

    def overdue_counts(self) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
        """(by township code, by matter kind): (open with a running township clock, overdue) — plus the
        county's own open escalated matters counted under kind 上报件 with the county hop's state.
        Counted in SQL by group (docs/performance.md, county pages): no row is loaded."""
        now_ms = to_unix_ms(self.clock.now())
        t, m = tracked_matter.c, county_matter.c
        by_township: dict[str, list[int]] = {}
        by_kind: dict[str, list[int]] = {}
        late = func.sum(case((t.township_due_at_ms < now_ms, 1), else_=0))
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(t.township_code, t.kind, func.count(), late)
                                .where(t.township_due_at_ms > 0, t.township_stopped_at_ms == 0)
                                .group_by(t.township_code, t.kind)).all()
            open_ = [Stage.IN_PROGRESS.value, Stage.WAITING_MATERIALS.value]
            escalated_open = int(conn.execute(select(func.count()).select_from(county_matter)
                                              .where(m.stage.in_(open_))).scalar_one())
            # Overdue or 督办 on the county hop: the open-clock counts kept as clocks change (the board's
            # totals too), not a join over every open matter.
            kept = self.deadlines.clock_counts(self.clock.now(), conn=conn)
            escalated_late = kept.get((COUNTY_HOP, "overdue"), 0) + kept.get((COUNTY_HOP, "supervise"), 0)
        for code, kind_value, n, n_late in rows:
            kind = _KIND_FROM_WIRE.get(int(kind_value))
            for bucket, key in ((by_township, code), (by_kind, kind.label_zh if kind else "未分类")):
                counts = bucket.setdefault(key, [0, 0])
                counts[0] += int(n)
                counts[1] += int(n_late or 0)
        if escalated_open:
            by_kind["上报件（县级环节）"] = [escalated_open, escalated_late]
        return ({k: (a, b) for k, (a, b) in sorted(by_township.items())},
                {k: (a, b) for k, (a, b) in sorted(by_kind.items())})

    def notices(self) -> list[dict[str, Any]]:
        with self.store.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(supervision_notice).order_by(supervision_notice.c.issued_at_ms.desc()))]

    def notice_rows(self) -> list[dict[str, Any]]:
        """Every 督办 notice (newest first) with its matter's catalogue code and, for an escalated
        matter, its view: only the notices' own matters are read, never the whole board."""
        notices = self.notices()
        ids = sorted({n["matter_id"] for n in notices})
        views: dict[str, CountyMatterView] = {}
        codes: dict[str, str] = {}
        now = self.clock.now()
        names = self.township_names()
        with self.store.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                for r in conn.execute(select(county_matter).where(county_matter.c.matter_id.in_(chunk))):
                    views[r.matter_id] = self._view(r, now, names, {}, {})
                for mid, code in conn.execute(select(tracked_matter.c.matter_id, tracked_matter.c.catalog_code)
                                              .where(tracked_matter.c.matter_id.in_(chunk))):
                    codes[mid] = code
        return [{**n, "view": views.get(n["matter_id"]),
                 "catalog_code": views[n["matter_id"]].catalog_code if n["matter_id"] in views
                 else codes.get(n["matter_id"], "")} for n in notices]

    def applicant(self, matter_id: str) -> records_pb2.ApplicantDetails | None:
        """The applicant's details, opened with the county key (only on the matter page, never in lists or logs)."""
        with self.store.engine.connect() as conn:
            sealed = conn.execute(select(county_matter.c.sealed_applicant).where(county_matter.c.matter_id == matter_id)).scalar()
        if not sealed:
            return None
        return records_pb2.ApplicantDetails.FromString(open_sealed(self.signer.seed(), bytes(sealed)))

    def counts(self) -> dict[str, int]:
        with self.store.engine.connect() as conn:
            return {s: int(n) for s, n in conn.execute(select(county_matter.c.stage, func.count()).group_by(county_matter.c.stage))}


def notice_status(row: dict[str, Any]) -> tuple[Literal["issued", "received", "acknowledged"], str]:
    """(data value, Chinese label) of the furthest step a 督办 notice reached (a row of `notices()`)."""
    if row.get("acknowledged_at_ms"):
        return "acknowledged", "已回复"
    if row.get("received_at_ms"):
        return "received", "已送达"
    return "issued", "已签发"


@dataclass(frozen=True)
class _Step:
    """What one county act did: the matter after it, its history line, the records signed down, the
    columns it sets, and whether (and with which words) the township is told."""

    after: HandledMatter
    text: str
    down: list[records_pb2.Record] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    announce: bool = True
    message: str | None = None


def _taken_up(m: HandledMatter, actor: Actor) -> HandledMatter:
    """At the county nobody owns an escalated matter the way a township operator does (it arrives with
    no 承办人): a delegated approver who acts on it takes it up, so the domain's check that the
    responsible person acts holds the approver acting; whoever held it before keeps watching."""
    if actor.role is not Role.APPROVER or m.owner == actor.staff_id:
        return m
    watchers = tuple(dict.fromkeys([*m.watchers, m.owner])) if m.owner else m.watchers
    return replace(m, owner=actor.staff_id, watchers=watchers)


def _bj(at: dt.datetime) -> str:
    return at.astimezone(_BEIJING).strftime("%Y年%m月%d日 %H:%M")


def _township_overdue(r: Any, now_ms: int) -> bool:
    if not r.township_due_at_ms:
        return False
    end = int(r.township_stopped_at_ms) or now_ms
    return end > int(r.township_due_at_ms)


def _json(m: HandledMatter) -> str:
    return json.dumps(matter_to_json_dict(m), ensure_ascii=False, separators=(",", ":"))


def _matter_id(record: records_pb2.Record) -> str:
    kind = record.WhichOneof("body")
    return str(getattr(getattr(record, kind), "matter_id", ""))[:64] if kind else ""
