"""Township handling of matters: the six kinds, first-asked responsibility, AB posts, suspension,
extension, results, and what the village and the county send back.

Every action runs as one transaction: the matter row moves by an optimistic version check (two
operators acting at once: one wins, the other is told to reload, nothing is lost), the hop clock is
saved in the deadline tables the deadline watch reads, the history gets a line, and the township
signs the record(s) that say what happened into its own chain, queued for the filing agent's device
where the village must learn of it. The transitions themselves are the pure
`shared.domain.handling.HandledMatter`; this module only loads, saves and signs.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from shared.calendar import WorkingCalendar
from shared.clock import Clock, from_unix_ms, to_unix_ms
from shared.deadline_watch.notify import Notification, extension_notice_sms, result_ready_sms
from shared.deadline_watch.store import DeadlineStore, hop_deadline
from shared.domain.authority import allowed_kinds, may_decide
from shared.domain.catalog import Catalog, CatalogItem, MatterKind, Tier
from shared.domain.deadlines import ClockState, ClockStatus, HopClock, SuspensionReason, Thresholds
from shared.domain.figures import MatterFacts, draw_follow_up_sample
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
from shared.errors import HandlingError
from shared.evidence_image import drawn_signature_problem, is_image, photo_problem
from shared.sealing import open_sealed, seal_to
from shared.signing import Signer
from shared.wire.v1 import envelope_pb2, records_pb2
from shared.wire_views import (
    KIND_TO_WIRE,
    TIER_TO_WIRE,
    due_ms,
    hop_view,
    limit_to_wire,
    rating_to_wire,
    stage_to_wire,
    suspension_to_wire,
)
from town_center.documents import TownDocuments
from town_center.errors import ConcurrentEditError, UnknownMatter
from town_center.store import TownStore
from town_center.store.matter_tables import follow_up_call, matter_event, refusal_register, town_matter
from town_center.store.tables import agent_key, ingest_log

__all__ = ["HandlingService", "Change", "MatterSummary", "MatterPage", "MatterEvent", "TOWNSHIP_HOP", "COUNTY_HOP",
           "ACCEPTANCE_HOP", "VILLAGE_HOP", "DELIVERY_HOP", "INTERNAL_AUDIENCE", "UpChain", "StaffDirectory",
           "Inbox"]

log = logging.getLogger(__name__)

TOWNSHIP_HOP = "township"
# 待受理: the township's clock on the one-time notification, from receipt to classification (000).
ACCEPTANCE_HOP = "acceptance"
# 报送: the village's leg, from the villager's request (the laptop's claimed time) to the township's receipt.
VILLAGE_HOP = "village"
# 送达: from the result to the villager's sign-off.
DELIVERY_HOP = "delivery"
# The township's own replica of the county's hop clock: it starts at the county's receipt time and
# follows the county's signed clock changes, so the township sees the county hop going overdue even
# while the county cannot be reached.
COUNTY_HOP = "county"
# Records only the township needs (an AB-post handover, an extension request) still go into its
# signed chain; this audience names no device, so they are never sent down.
INTERNAL_AUDIENCE = "-township-"


@dataclass(frozen=True)
class MatterSummary:
    """One line of the inbox or the 督办 list."""

    matter_id: str
    village_code: str
    catalog_code: str
    catalog_name: str
    stage: Stage
    kind: MatterKind | None
    owner: str
    received_at: dt.datetime
    due_at: dt.datetime | None
    state: ClockState | None        # None when no clock runs (received, returned, waiting for materials)
    clock_status: ClockStatus | None
    id_masked: str
    door_to_door: bool
    version: int
    pending_extension: bool
    elderly_or_disabled: bool = False
    pending_refusal: bool = False


@dataclass(frozen=True)
class Inbox:
    """One page of the inbox: nothing older than a page disappears, it is a page further on."""

    items: list[MatterSummary]
    total: int
    page: int
    page_size: int
    # Where the next page starts (keyset: receipt time and matter id of this page's last row), or ""
    # on the last page: `inbox_page(after=...)` reads it from the index without skipping rows.
    next_after: str = ""

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True)
class MatterEvent:
    at: dt.datetime
    actor: str
    action: str
    text_zh: str


@dataclass(frozen=True)
class MatterPage:
    summary: MatterSummary
    matter: HandledMatter
    item: CatalogItem | None
    materials_brought: tuple[str, ...]
    tolerated_missing: tuple[str, ...]
    events: tuple[MatterEvent, ...]
    rating: int
    rating_comment: str
    lookup_code_set: bool
    author_key_id: str
    agent_name: str = ""               # 首问责任人 of a relayed matter: the village agent who took it on
    intake_note: str = ""
    authorization: dict[str, Any] = field(default_factory=dict)
    village_clock: HopClock | None = None
    claimed_filed_at: dt.datetime | None = None


class StaffDirectory(Protocol):
    """Who works here (the console's accounts): an AB handover names an existing, active account."""

    def active_name(self, staff_id: str) -> str | None: ...


class UpChain(Protocol):
    """The township's signed chain to the county (`town_center.county_link.CountyLink`)."""

    township_code: str
    county_public_key: bytes
    county_key_id: str

    def append_in(self, conn: Connection, record: records_pb2.Record, *, now_ms: int) -> None: ...


@dataclass
class Change:
    """What one action writes besides the matter itself."""

    action: str
    text_zh: str
    down: list[records_pb2.Record] = field(default_factory=list)      # to the filing agent
    internal: list[records_pb2.Record] = field(default_factory=list)  # into the township chain only
    notify: list[Notification] = field(default_factory=list)
    refusal: bool = False   # 不予受理 / 不予批准: registered for audit (否定报备) with the decision
    up: list[records_pb2.Record] = field(default_factory=list)        # to the county, when linked
    county_clock: HopClock | None = None                               # the replica of the county's hop


def _inbox_cursor(after: str) -> tuple[int, str] | None:
    """An inbox keyset cursor ("receipt ms:matter id"); anything else (a hand-edited URL) is no cursor."""
    at, _, matter_id = (after or "").partition(":")
    if not at.isdigit() or not matter_id or len(matter_id) > 64:
        return None
    return int(at), matter_id


def _summary(row: Any, matter: HandledMatter, catalog: Catalog, now: dt.datetime, store: DeadlineStore) -> MatterSummary:
    # Waiting to be accepted, the clock that counts is the one-time notification's.
    clock = matter.acceptance_clock if matter.stage is Stage.RECEIVED else matter.clock
    state = status = None
    if clock is not None:
        status = clock.status
        if clock.start_at is not None:
            state = clock.state_at(now, store.calendar, store.thresholds)
    return MatterSummary(
        matter_id=row.matter_id, village_code=row.village_code, catalog_code=row.catalog_code,
        catalog_name=catalog.item(row.catalog_code).name if row.catalog_code in catalog else row.catalog_code,
        stage=matter.stage, kind=matter.kind, owner=matter.owner, received_at=from_unix_ms(int(row.received_at_ms)),
        due_at=from_unix_ms(int(row.due_at_ms)) if row.due_at_ms else None, state=state, clock_status=status,
        id_masked=row.id_masked, door_to_door=bool(row.door_to_door), version=int(row.version),
        pending_extension=matter.pending_extension is not None,
        elderly_or_disabled=bool(row.elderly_or_disabled), pending_refusal=matter.pending_refusal is not None,
    )


class HandlingService:
    def __init__(self, store: TownStore, deadlines: DeadlineStore, signer: Signer, clock: Clock, catalog: Catalog,
                 *, on_clock_saved: Callable[[], None] | None = None) -> None:
        self.store = store
        self.deadlines = deadlines
        self.signer = signer
        self.clock = clock
        self.catalog = catalog
        self.tier = Tier.TOWNSHIP
        # Set by the bootstrap when the township is linked to a county.
        self.up: UpChain | None = None
        # Set by the bootstrap: the console's accounts, so a handover names a real colleague.
        self.staff: StaffDirectory | None = None
        # The deadline watch's wake-up: a new or moved deadline may be due sooner than its next scan.
        self.on_clock_saved = on_clock_saved
        # The written notices an action issues (受理/补办/退回/联办/上报 notices, 延期告知书, 不予许可决定书).
        self.documents: TownDocuments | None = TownDocuments(self)

    def refresh_catalog(self) -> bool:
        """Take up a catalogue published (perhaps by another process) since this one was loaded."""
        from town_center.services import CATALOG_VERSION_META, published_catalog

        version = self.store.get_meta(CATALOG_VERSION_META)
        if not version or version == self.catalog.version:
            return False
        catalog = published_catalog(self.store)
        if catalog is None:
            return False
        self.catalog = catalog
        log.info("catalogue %s taken up", catalog.version)
        return True

    @property
    def calendar(self) -> WorkingCalendar:
        return self.deadlines.calendar

    @property
    def thresholds(self) -> Thresholds:
        return self.deadlines.thresholds

    # ================================================================== reads

    def decode(self, row: Any) -> HandledMatter:
        return matter_from_json_dict(json.loads(row.state_json))

    def inbox(self, *, village_code: str | None = None, stages: Sequence[Stage] | None = None,
              owner: str | None = None, limit: int = 500) -> list[MatterSummary]:
        return self.inbox_page(village_code=village_code, stages=stages, owner=owner, page=1, page_size=limit).items

    def inbox_page(self, *, village_code: str | None = None, stages: Sequence[Stage] | None = None,
                   owner: str | None = None, page: int = 1, page_size: int = 100, after: str = "") -> Inbox:
        """A page of the inbox, newest first; elderly or disabled applicants' matters first within the page
        (the operator sees them first without losing the order of arrival).

        Pages are in (receipt time, matter id) order, newest first, so matters received in the same
        millisecond still have one place each. With `after` (a page's `next_after`) the page starts
        right after that row, read from the index (keyset paging: as cheap deep in the inbox as at
        its top); without it, `page` counts pages from the top."""
        page = max(1, page)
        m = town_matter.c
        conditions = []
        if village_code:
            conditions.append(m.village_code == village_code)
        if stages:
            conditions.append(m.stage.in_([s.value for s in stages]))
        if owner:
            conditions.append(m.owner == owner)
        keyset = _inbox_cursor(after)
        query = select(town_matter).where(*conditions).order_by(m.received_at_ms.desc(), m.matter_id.desc()).limit(page_size)
        if keyset is not None:
            at_ms, matter_id = keyset
            query = query.where(or_(m.received_at_ms < at_ms, and_(m.received_at_ms == at_ms, m.matter_id < matter_id)))
        else:
            query = query.offset((page - 1) * page_size)
        now = self.clock.now()
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
            total = int(conn.execute(select(func.count()).select_from(town_matter).where(*conditions)).scalar_one())
        items = [_summary(r, self.decode(r), self.catalog, now, self.deadlines) for r in rows]
        items.sort(key=lambda m: not m.elderly_or_disabled)   # stable: arrival order kept within each group
        next_after = f"{int(rows[-1].received_at_ms)}:{rows[-1].matter_id}" if len(rows) == page_size else ""
        return Inbox(items=items, total=total, page=page, page_size=page_size, next_after=next_after)

    def villages(self) -> list[str]:
        with self.store.engine.connect() as conn:
            return [v for (v,) in conn.execute(select(town_matter.c.village_code).distinct().order_by(town_matter.c.village_code))]

    def supervision_list(self) -> list[MatterSummary]:
        """督办 list: every open township hop that is overdue, worst first, oldest deadline first."""
        now = self.clock.now()
        open_stages = [Stage.RECEIVED.value, Stage.IN_PROGRESS.value, Stage.ESCALATING.value,
                       Stage.WAITING_MATERIALS.value]
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(town_matter).where(
                town_matter.c.stage.in_(open_stages), town_matter.c.due_at_ms.is_not(None),
                town_matter.c.due_at_ms <= to_unix_ms(now))).all()
        items = [_summary(r, self.decode(r), self.catalog, now, self.deadlines) for r in rows]
        items = [m for m in items if m.state is not None and m.state.rank >= ClockState.OVERDUE.rank]
        return sorted(items, key=lambda m: (-(m.state.rank if m.state else 0), m.due_at or now))

    def county_overdue(self) -> list[MatterSummary]:
        """上报件 whose county hop (the township's replica of the county's clock) is overdue, worst first:
        the township cannot act on them, but it must see them, chase the county and tell the applicant.
        Each summary's due date and state are the county hop's."""
        now = self.clock.now()
        h = hop_deadline
        with self.store.engine.connect() as conn:
            hops = conn.execute(select(h.c.matter_id).where(
                h.c.hop == COUNTY_HOP, h.c.status == ClockStatus.RUNNING.value, h.c.due_at_ms.is_not(None),
                h.c.due_at_ms < to_unix_ms(now))).scalars().all()
            rows = conn.execute(select(town_matter).where(town_matter.c.matter_id.in_(hops))).all() if hops else []
        items = []
        for r in rows:
            clock = self.deadlines.load_clock(r.matter_id, COUNTY_HOP)
            if clock is None:
                continue
            state = clock.state_at(now, self.calendar, self.thresholds)
            if state.rank < ClockState.OVERDUE.rank:
                continue
            items.append(replace(_summary(r, self.decode(r), self.catalog, now, self.deadlines),
                                 due_at=clock.due_at(self.calendar), state=state, clock_status=clock.status))
        return sorted(items, key=lambda m: (-(m.state.rank if m.state else 0), m.due_at or now))

    def pending_extensions(self) -> list[MatterSummary]:
        return [m for m in self.inbox(stages=[Stage.IN_PROGRESS, Stage.WAITING_MATERIALS, Stage.ESCALATING])
                if m.pending_extension]

    def page(self, matter_id: str) -> MatterPage:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(town_matter).where(town_matter.c.matter_id == matter_id)).first()
            if row is None:
                raise UnknownMatter("找不到该办件：可能链接有误，或办件尚未同步到本中心")
            events = conn.execute(select(matter_event).where(matter_event.c.matter_id == matter_id)
                                  .order_by(matter_event.c.event_id)).all()
            agent_name = conn.execute(select(agent_key.c.holder_name).where(
                agent_key.c.key_id == row.author_key_id)).scalar() or ""
            filing = self._filing(conn, row)
        matter = self.decode(row)
        return MatterPage(
            summary=_summary(row, matter, self.catalog, self.clock.now(), self.deadlines), matter=matter,
            item=self.catalog.item(row.catalog_code) if row.catalog_code in self.catalog else None,
            materials_brought=tuple(json.loads(row.materials_json)), tolerated_missing=tuple(json.loads(row.tolerated_json)),
            events=tuple(MatterEvent(from_unix_ms(int(e.at_ms)), e.actor, e.action, e.text_zh) for e in events),
            rating=int(row.rating), rating_comment=row.rating_comment, lookup_code_set=row.lookup_code_hash is not None,
            author_key_id=row.author_key_id, agent_name=agent_name, intake_note=row.intake_note or "",
            authorization=self._authorization_view(filing), village_clock=self.deadlines.load_clock(matter_id, VILLAGE_HOP),
            claimed_filed_at=from_unix_ms(int(row.claimed_filed_at_ms)) if row.claimed_filed_at_ms else None,
        )

    def _filing(self, conn: Connection, row: Any) -> records_pb2.RequestFiled | None:
        """The village's signed filing of this matter, as received (its receipt time is the matter's)."""
        rows = conn.execute(select(ingest_log.c.payload).where(
            ingest_log.c.author_key_id == row.author_key_id, ingest_log.c.body_kind == "request_filed",
            ingest_log.c.receipt_time_ms == row.received_at_ms)).all()
        for (payload,) in rows:
            record = records_pb2.Record.FromString(bytes(payload))
            if record.request_filed.matter_id == row.matter_id:
                return record.request_filed
        return None

    _AUTH_METHOD_ZH = {
        records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE: "申请人手写签名",
        records_pb2.AUTHORIZATION_METHOD_PHOTO_OF_FORM: "已签字委托书照片",
        records_pb2.AUTHORIZATION_METHOD_WITNESS: "见证人见证",
    }

    def _authorization_view(self, filing: records_pb2.RequestFiled | None) -> dict[str, Any]:
        """What the decision maker sees of the villager's authorization: the method, and the image or
        the witness, opened with the township key (the village sealed them to it)."""
        if filing is None or not filing.HasField("authorization"):
            return {}
        auth = filing.authorization
        method = self._AUTH_METHOD_ZH.get(auth.method)
        if method is None:
            method = "按手印" if "FINGER" in records_pb2.AuthorizationMethod.Name(auth.method) else "未注明"
        view: dict[str, Any] = {"method_zh": method, "image": None, "witness_name": "", "witness_statement": "",
                                "captured_at": from_unix_ms(auth.captured_at_ms) if auth.captured_at_ms else None}
        if not auth.sealed_evidence:
            return view
        try:
            evidence = open_sealed(self.signer.seed(), bytes(auth.sealed_evidence))
        except Exception:  # noqa: BLE001 - sealed to another township key: shown as unavailable
            view["unavailable"] = True
            return view
        if is_image(evidence):
            view["image"] = evidence
            # A record from any client may carry any image: the township looks at the pixels itself.
            view["problem"] = (drawn_signature_problem(evidence) if auth.method == records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE
                               else photo_problem(evidence, what="委托书或手印"))
        else:
            try:
                witness = json.loads(evidence.decode("utf-8"))
                view["witness_name"] = str(witness.get("witness_name", ""))
                view["witness_statement"] = str(witness.get("statement", ""))
            except (UnicodeDecodeError, ValueError, AttributeError):
                view["unavailable"] = True
            if not view.get("unavailable") and not view["witness_name"].strip():
                view["problem"] = "见证记录没有见证人姓名"
        return view

    def _authorization_evidence(self, filing: records_pb2.RequestFiled | None) -> bytes | None:
        if filing is None or not filing.HasField("authorization") or not filing.authorization.sealed_evidence:
            return None
        try:
            return open_sealed(self.signer.seed(), bytes(filing.authorization.sealed_evidence))
        except Exception:  # noqa: BLE001 - sealed to an earlier township key: nothing to pass on
            return None

    def _authorization_problem(self, conn: Connection, matter_id: str) -> str | None:
        row = conn.execute(select(town_matter).where(town_matter.c.matter_id == matter_id)).first()
        problem = self._authorization_view(self._filing(conn, row)).get("problem") if row is not None else None
        return problem if isinstance(problem, str) else None

    def authorization_image(self, matter_id: str) -> bytes | None:
        """The signature or signed-form image of a matter's authorization, for the matter page."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(town_matter).where(town_matter.c.matter_id == matter_id)).first()
            if row is None:
                raise UnknownMatter("找不到该办件")
            filing = self._filing(conn, row)
        image = self._authorization_view(filing).get("image")
        return image if isinstance(image, bytes) else None

    def applicant(self, matter_id: str, *, conn: Connection | None = None) -> records_pb2.ApplicantDetails | None:
        """Open the sealed applicant details (name, ID, phone, address) for the responsible staff.
        Returns None when the village sealed them to another key (e.g. before a township key change)."""
        query = select(town_matter.c.sealed_details).where(town_matter.c.matter_id == matter_id)
        if conn is not None:
            row = conn.execute(query).first()
        else:
            with self.store.engine.connect() as own:
                row = own.execute(query).first()
        if row is None:
            raise UnknownMatter("找不到该办件：可能链接有误，或办件尚未同步到本中心")
        if not row.sealed_details:
            return None
        try:
            details = records_pb2.ApplicantDetails()
            details.ParseFromString(open_sealed(self.signer.seed(), bytes(row.sealed_details)))
            return details
        except Exception:  # noqa: BLE001 - sealed to another key or damaged: shown as unavailable
            return None

    def audience_for(self, matter_id: str) -> list[str]:
        """The device(s) that must hear about a matter: the agent that filed it."""
        with self.store.engine.connect() as conn:
            key = conn.execute(select(town_matter.c.author_key_id).where(town_matter.c.matter_id == matter_id)).scalar()
        return [key] if key else []

    def refusals(self) -> list[dict[str, Any]]:
        """否定报备: every refusal, newest first, for audit."""
        with self.store.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(refusal_register).order_by(refusal_register.c.at_ms.desc()))]

    # ================================================================== the write path

    def _load_for_update(self, conn: Connection, matter_id: str) -> Any:
        row = conn.execute(select(town_matter).where(town_matter.c.matter_id == matter_id).with_for_update()).first()
        if row is None:
            raise UnknownMatter("找不到该办件：可能链接有误，或办件尚未同步到本中心")
        return row

    def commit_in(self, conn: Connection, row: Any, before: HandledMatter, after: HandledMatter, change: Change,
                *, actor_label: str, now: dt.datetime, extra: dict[str, Any] | None = None) -> None:
        now_ms = to_unix_ms(now)
        values: dict[str, Any] = {
            "stage": after.stage.value, "kind": after.kind.value if after.kind else None, "owner": after.owner,
            "version": after.version, "updated_at_ms": now_ms,
            "state_json": json.dumps(matter_to_json_dict(after), ensure_ascii=False, separators=(",", ":")),
            "due_at_ms": due_ms(after.clock, self.calendar) or None,
        }
        if after.stage is Stage.RECEIVED and after.acceptance_clock is not None:
            values["due_at_ms"] = due_ms(after.acceptance_clock, self.calendar) or None
        if after.clock is not None and after.clock.start_at is not None:
            values["worst_state"] = max(int(row.worst_state), after.clock.state_at(now, self.calendar, self.thresholds).rank)
        # Each hop is charged on its own clock: the township's work ends when its clock stops (a 上报件's
        # at the county's receipt, never at the county's decision).
        if row.completed_at_ms is None and after.clock is not None and after.clock.stop_at is not None \
                and after.stage is not Stage.WITHDRAWN:
            values["completed_at_ms"] = to_unix_ms(after.clock.stop_at)
        elif after.stage is Stage.RESULT_READY and row.completed_at_ms is None:
            values["completed_at_ms"] = now_ms
        values.update(extra or {})
        moved = conn.execute(update(town_matter).where(town_matter.c.matter_id == row.matter_id,
                                                       town_matter.c.version == row.version).values(**values)).rowcount
        if moved != 1:
            raise ConcurrentEditError("本件刚被其他人修改过，您的操作未保存，请刷新页面后重做")
        conn.execute(insert(matter_event).values(matter_id=row.matter_id, at_ms=now_ms, actor=actor_label[:64],
                                                 action=change.action, text_zh=change.text_zh, version=after.version))
        if after.clock is not None and after.clock != before.clock:
            self.deadlines.save_clock(row.matter_id, TOWNSHIP_HOP, after.clock, now=now,
                                      responsible=after.owner or None, conn=conn)
        if after.acceptance_clock is not None and after.acceptance_clock != before.acceptance_clock:
            self.deadlines.save_clock(row.matter_id, ACCEPTANCE_HOP, after.acceptance_clock, now=now,
                                      responsible=after.owner or None, conn=conn)
        if after.delivery_clock is not None and after.delivery_clock != before.delivery_clock:
            # 送达 is the village agent's leg: the filing device is who must act.
            self.deadlines.save_clock(row.matter_id, DELIVERY_HOP, after.delivery_clock, now=now,
                                      responsible=f"village:{row.author_key_id[:20]}", conn=conn)
        if change.county_clock is not None:
            self.deadlines.save_clock(row.matter_id, COUNTY_HOP, change.county_clock, now=now, responsible=None, conn=conn)
        if after.stage != before.stage or after.clock != before.clock or change.down or change.county_clock:
            change.down.append(self._status_update(after, now, change.text_zh, row=row, conn=conn,
                                                   county_clock=change.county_clock))
        # Signed at the township's present, not at `now` (for a village record that is its receipt time,
        # which during a catch-up lies in the past): the township chain's own times never step back.
        sign_ms = max(now_ms, to_unix_ms(self.clock.now()))
        for record in change.down:
            record.audience.village_code = row.village_code
            self.store.publish_in(conn, self.signer, record, [row.author_key_id], now_ms=sign_ms)
        for record in change.internal:
            self.store.publish_in(conn, self.signer, record, [INTERNAL_AUDIENCE], now_ms=sign_ms)
        if self.up is not None:
            # The county tracks every township's matters: each status change goes up as well.
            for record in change.down:
                if record.HasField("status_update"):
                    copy = records_pb2.Record()
                    copy.status_update.CopyFrom(record.status_update)
                    copy.audience.township_code = self.up.township_code
                    copy.audience.village_code = row.village_code
                    change.up.insert(0, copy)
            for record in change.up:
                self.up.append_in(conn, record, now_ms=sign_ms)
        for n in change.notify:
            self.deadlines.enqueue_notification(n, now=now, conn=conn)
        if change.refusal and after.refusal is not None:
            reason = after.return_reason if after.refusal is RefusalKind.NOT_ACCEPTED else after.result_summary
            conn.execute(insert(refusal_register).values(
                matter_id=row.matter_id, catalog_code=row.catalog_code, village_code=row.village_code,
                operator_id=actor_label[:64], reason=reason, at_ms=now_ms, refusal_kind=after.refusal.value,
                approved_by=after.refusal_approved_by[:64]))
        if self.documents is not None:
            # In the action's own transaction: a rolled-back action leaves no notice and no gap in the numbers.
            self.documents.issue_for(conn, row, before, after, change, now=now, actor_label=actor_label)

    def _act(self, matter_id: str, actor: Actor, expected_version: int | None,
             transition: Callable[[HandledMatter, dt.datetime, Connection], tuple[HandledMatter, Change]],
             *, also: Callable[[Connection], object] | None = None, now: dt.datetime | None = None) -> HandledMatter:
        """One action in one transaction; `also` runs inside it (e.g. marking a county record folded)."""
        # Whole milliseconds: the instant kept here is exactly the one the signed records carry.
        now = now or from_unix_ms(to_unix_ms(self.clock.now()))
        with self.store.engine.begin() as conn:
            self.store.lock_own_tip(conn, self.signer.key_id)
            row = self._load_for_update(conn, matter_id)
            before = self.decode(row)
            if expected_version is not None and expected_version != before.version:
                raise ConcurrentEditError("本件刚被其他人修改过，您的操作未保存，请刷新页面后重做")
            after, change = transition(before, now, conn)
            self.commit_in(conn, row, before, after, change, actor_label=actor.staff_id, now=now)
            if also is not None:
                also(conn)
        log.info("matter %s: %s by %s", matter_id, change.action, actor.staff_id)
        self._saved()
        return after

    def _saved(self) -> None:
        if self.documents is not None:
            self.documents.after_commit()
        if self.on_clock_saved is not None:
            try:
                self.on_clock_saved()
            except Exception:
                log.exception("deadline watch wake-up failed")

    def _item(self, matter: HandledMatter) -> CatalogItem:
        if matter.catalog_code not in self.catalog:
            raise HandlingError(f"服务事项目录中没有事项 {matter.catalog_code}，请先更新目录")
        return self.catalog.item(matter.catalog_code)

    # ------------------------------------------------------------------ records

    def _status_update(self, m: HandledMatter, now: dt.datetime, message: str, *, row: Any, conn: Connection,
                       county_clock: HopClock | None = None) -> records_pb2.Record:
        record = records_pb2.Record()
        body = record.status_update
        body.matter_id = m.matter_id
        body.stage = stage_to_wire(m)
        body.catalog_code, body.village_code = row.catalog_code, row.village_code
        if m.kind is not None:
            body.kind = KIND_TO_WIRE[m.kind]
        if m.clock is not None:
            body.hops.append(hop_view(m.tier, m.clock, now, self.calendar, self.thresholds))
        if m.kind is MatterKind.REPORTED:
            county = county_clock or self.deadlines.load_clock(m.matter_id, COUNTY_HOP, conn=conn)
            if county is not None:
                body.hops.append(hop_view(Tier.COUNTY, county, now, self.calendar, self.thresholds))
        body.message = message
        return record

    def _clock_record(self, m: HandledMatter, change: records_pb2.ClockChange, now: dt.datetime, *, reason: str = "",
                      suspension: SuspensionReason | None = None, approver: str = "", new_limit: Limit | None = None,
                      notified: bool = False) -> records_pb2.Record:
        record = records_pb2.Record()
        body = record.hop_clock_changed
        body.matter_id, body.tier, body.change, body.at_ms = m.matter_id, TIER_TO_WIRE[m.tier], change, to_unix_ms(now)
        if suspension is not None:
            body.suspension_reason = suspension_to_wire(suspension)
        body.reason, body.approver_id, body.applicant_notified = reason, approver, notified
        if new_limit is not None:
            body.new_limit.CopyFrom(limit_to_wire(new_limit))
        body.due_at_ms = due_ms(m.clock, self.calendar) if m.clock and m.clock.status is not ClockStatus.SUSPENDED else 0
        return record

    # ================================================================== operator actions

    def allowed_kinds(self, matter: HandledMatter) -> list[MatterKind]:
        """The kinds this township may take the matter as (its authority under the catalogue)."""
        if matter.catalog_code not in self.catalog:
            return []
        allowed = allowed_kinds(self.catalog.item(matter.catalog_code), self.tier)
        return [k for k in MatterKind if k in allowed]

    def actions_for(self, matter: HandledMatter, role: Role) -> frozenset[str]:
        """The actions staff in `role` may take on the matter now, by name (the console's forms and the
        API's `POST /matters/{ref}/{action}`); the actions themselves still check everything."""
        if role in (Role.ADMINISTRATOR, Role.SUPERVISOR):   # separation of duties: accounts, or oversight (督查), not cases
            return frozenset()
        m, stage = matter, matter.stage
        clock = m.clock
        clock_status = clock.status if clock is not None else None
        kinds = self.allowed_kinds(m) if stage is Stage.RECEIVED else []
        decides = self.may_decide(m)
        item = self.catalog.item(m.catalog_code) if m.catalog_code in self.catalog else None
        major = item is not None and item.major
        allowed: set[str] = set()
        if stage is Stage.RECEIVED and kinds and m.pending_refusal is None:
            allowed.add("classify")
        if major and m.pending_refusal is None and role is not Role.DIRECTOR and (
                (stage is Stage.RECEIVED and MatterKind.RETURNED in kinds) or (stage is Stage.IN_PROGRESS and decides)):
            allowed.add("request_refusal")
        if m.pending_refusal is not None and role is Role.DIRECTOR:
            allowed.add("decide_refusal")
        if stage is Stage.WAITING_MATERIALS:
            allowed.add("materials_completed")
        if stage in (Stage.IN_PROGRESS, Stage.ESCALATING, Stage.ESCALATED):
            allowed.add("request_materials")
        if stage in (Stage.IN_PROGRESS, Stage.ESCALATING):
            allowed.add("resume" if clock_status is ClockStatus.SUSPENDED else "suspend")
        if stage in (Stage.IN_PROGRESS, Stage.WAITING_MATERIALS, Stage.ESCALATING) and m.pending_extension is None \
                and clock is not None:
            allowed.add("request_extension")
        if m.pending_extension is not None and role is Role.DIRECTOR:
            allowed.add("decide_extension")
        if clock is not None and clock.unnotified_extensions:
            allowed.add("extension_notified")
        if not m.is_final and stage not in (Stage.RESULT_READY, Stage.HANDED_OVER) and m.owner:
            allowed.add("hand_over")
        if stage is Stage.IN_PROGRESS and decides and m.pending_refusal is None:
            allowed.add("record_result")
        if stage is Stage.ESCALATING and m.escalation_sent_at is None and clock_status is not ClockStatus.SUSPENDED:
            allowed.add("escalate")
        return frozenset(allowed)

    def matter_id_for_lookup_hash(self, code_hash: bytes) -> str | None:
        """The matter a receipt's lookup code names (by the code's hash, as the village filed it)."""
        with self.store.engine.connect() as conn:
            return conn.execute(select(town_matter.c.matter_id)
                                .where(town_matter.c.lookup_code_hash == code_hash)).scalar()

    def classify(self, matter_id: str, kind: MatterKind, *, actor: Actor, expected_version: int | None = None,
                 missing_materials: Sequence[str] = (), return_reason: str = "", promised_limit: Limit | None = None,
                 lead_window: str = "", departments: Sequence[str] = (),
                 refusal_approved_by: str = "") -> HandledMatter:
        """Accept and classify a received matter (即办/承诺/补办/退回/联办/上报) within the township's
        authority; the operator becomes its owner. A 承诺件's written promise comes from its clock."""

        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            item = self._item(m)
            if kind not in (MatterKind.RETURNED, MatterKind.SUPPLEMENT):
                problem = self._authorization_problem(conn, m.matter_id)
                if problem:
                    raise HandlingError(f"群众的委托授权不能成立（{problem}），不能受理；请退回，或按补办件请代办员补签委托书")
            after = m.classify(kind, actor=actor, at=now, item=item, missing_materials=tuple(missing_materials),
                               return_reason=return_reason, promised_limit=promised_limit, calendar=self.calendar,
                               lead_window=lead_window, departments=tuple(departments),
                               refusal_approved_by=refusal_approved_by)
            record = records_pb2.Record()
            body = record.matter_classified
            body.matter_id, body.kind, body.operator_id = m.matter_id, KIND_TO_WIRE[kind], after.owner
            body.catalog_code = m.catalog_code
            if after.clock is not None:
                body.promised_limit.CopyFrom(limit_to_wire(after.clock.limit))
                body.statutory_limit.CopyFrom(limit_to_wire(after.clock.statutory))
                body.due_at_ms = due_ms(after.clock, self.calendar)
            body.written_promise, body.return_reason, body.lead_window = (
                after.written_promise, after.return_reason, after.lead_window)
            body.missing_materials.extend(after.missing_materials)
            body.departments.extend(after.departments)
            return after, Change("classify", _classified_text(after), down=[record],
                                 refusal=kind is MatterKind.RETURNED)

        return self._act(matter_id, actor, expected_version, transition)

    def request_refusal(self, matter_id: str, kind: RefusalKind, reason: str, *, actor: Actor,
                        expected_version: int | None = None) -> HandledMatter:
        """An operator asks the director to approve refusing a major or difficult matter (004 篇6)."""

        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            after = m.request_refusal(actor=actor, at=now, item=self._item(m), kind=kind, reason=reason)
            return after, Change("request_refusal", f"申请{kind.label_zh}（重大疑难事项，待中心主任审批）：{reason.strip()}")

        return self._act(matter_id, actor, expected_version, transition)

    def decide_refusal(self, matter_id: str, *, approve: bool, actor: Actor,
                       expected_version: int | None = None) -> HandledMatter:
        """The director approves (the refusal takes effect now, in the director's name) or declines it."""
        if actor.role is not Role.DIRECTOR:
            raise HandlingError("不予受理/不予批准申请须由中心主任审批")
        matter = self.page(matter_id).matter
        request = matter.pending_refusal
        if request is None:
            raise HandlingError("没有待审批的不予受理/不予批准申请")
        if not approve:
            def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
                after = m.refusal_request_declined(actor=actor)
                return after, Change("decline_refusal", f"中心主任未批准{request.kind.label_zh}申请，请继续办理")

            return self._act(matter_id, actor, expected_version, transition)
        if request.kind is RefusalKind.NOT_ACCEPTED:
            return self.classify(matter_id, MatterKind.RETURNED, actor=actor, expected_version=expected_version,
                                 return_reason=request.reason, refusal_approved_by=actor.staff_id)
        return self.record_result(matter_id, approved=False, summary=request.reason, actor=actor,
                                  expected_version=expected_version, refusal_approved_by=actor.staff_id)

    def materials_completed(self, matter_id: str, *, actor: Actor, expected_version: int | None = None) -> HandledMatter:
        """补办件: the applicant brought everything; the clock starts (or resumes) now."""

        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            after = m.materials_completed(actor=actor, at=now)
            started = m.clock is not None and m.clock.status is ClockStatus.WAITING
            change = records_pb2.CLOCK_CHANGE_STARTED if started else records_pb2.CLOCK_CHANGE_RESUMED
            if m.upper_tier_waiting:
                record = records_pb2.Record()
                record.materials_added.matter_id = m.matter_id
                record.materials_added.material_ids.extend(m.missing_materials)
                record.materials_added.note = "乡镇已核对补正材料，报县级继续办理"
                return after, Change("materials_completed", "补正材料已核对，已报县级继续办理", up=[record])
            text = "材料已补齐，开始计时" if started else "材料已补正，恢复计时"
            return after, Change("materials_completed", text, down=[self._clock_record(after, change, now, reason=text)])

        return self._act(matter_id, actor, expected_version, transition)

    def request_materials(self, matter_id: str, missing_materials: Sequence[str], *, actor: Actor,
                          expected_version: int | None = None) -> HandledMatter:
        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            after = m.materials_requested(actor=actor, at=now, missing_materials=tuple(x.strip() for x in missing_materials if x.strip()))
            text = "一次性告知需补正材料：" + "、".join(after.missing_materials) + "（补正期间不计时）"
            return after, Change("request_materials", text, down=[self._clock_record(
                after, records_pb2.CLOCK_CHANGE_SUSPENDED, now, reason=text, suspension=SuspensionReason.AWAITING_MATERIALS)])

        return self._act(matter_id, actor, expected_version, transition)

    def suspend(self, matter_id: str, reason: SuspensionReason, note: str = "", *, actor: Actor,
                expected_version: int | None = None) -> HandledMatter:
        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            after = m.suspend(actor=actor, at=now, reason=reason, note=note.strip())
            text = f"中止计时：{reason.label_zh}" + (f"（{note.strip()}）" if note.strip() else "") + "，此期间不计入办理时限"
            return after, Change("suspend", text, down=[self._clock_record(
                after, records_pb2.CLOCK_CHANGE_SUSPENDED, now, reason=text, suspension=reason)])

        return self._act(matter_id, actor, expected_version, transition)

    def resume(self, matter_id: str, *, actor: Actor, expected_version: int | None = None) -> HandledMatter:
        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            after = m.resume(actor=actor, at=now)
            return after, Change("resume", "恢复计时", down=[self._clock_record(after, records_pb2.CLOCK_CHANGE_RESUMED, now)])

        return self._act(matter_id, actor, expected_version, transition)

    def request_extension(self, matter_id: str, new_limit: Limit, reason: str, *, actor: Actor,
                          expected_version: int | None = None) -> HandledMatter:
        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            after = m.request_extension(actor=actor, at=now, new_limit=new_limit, reason=reason)
            record = records_pb2.Record()
            body = record.extension_requested
            body.matter_id, body.tier, body.requested_by = m.matter_id, TIER_TO_WIRE[m.tier], actor.staff_id
            body.new_limit.CopyFrom(limit_to_wire(new_limit))
            body.reason, body.requested_at_ms = reason.strip(), to_unix_ms(now)
            return after, Change("request_extension", f"申请延期至{new_limit.describe_zh()}：{reason.strip()}（待主任审批）",
                                  internal=[record])

        return self._act(matter_id, actor, expected_version, transition)

    def decide_extension(self, matter_id: str, *, approve: bool, actor: Actor,
                         expected_version: int | None = None) -> HandledMatter:
        """Director only (003 第七条). On approval the village is told, so the agent tells the applicant in writing."""

        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            request = m.pending_extension
            after = m.decide_extension(actor=actor, at=now, approve=approve, calendar=self.calendar)
            assert request is not None
            if not approve:
                record = records_pb2.Record()
                body = record.extension_refused
                body.matter_id, body.tier, body.refused_by = m.matter_id, TIER_TO_WIRE[m.tier], actor.staff_id
                body.refused_at_ms = to_unix_ms(now)
                return after, Change("refuse_extension", "主任未批准延期申请，仍按原时限办理", internal=[record])
            text = f"经主任批准延期，新时限为{request.new_limit.describe_zh()}（理由：{request.reason}），请书面告知申请人"
            phone = self._applicant_phone(m.matter_id, conn)
            new_due = after.clock.due_at(self.calendar) if after.clock else None
            notify = [] if not phone or new_due is None else [extension_notice_sms(
                matter_id=m.matter_id, hop=TOWNSHIP_HOP, phone=phone, new_due_at=new_due,
                extension_index=len(after.clock.extensions) if after.clock else 0)]
            return after, Change("approve_extension", text, notify=notify, down=[self._clock_record(
                after, records_pb2.CLOCK_CHANGE_EXTENDED, now, reason=request.reason, approver=actor.staff_id,
                new_limit=request.new_limit)])

        return self._act(matter_id, actor, expected_version, transition)

    def applicant_notified_of_extension(self, matter_id: str, *, actor: Actor,
                                        expected_version: int | None = None) -> HandledMatter:
        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            if m.clock is None or not m.clock.unnotified_extensions:
                raise HandlingError("没有尚未告知申请人的延期")
            after = m.applicant_notified_of_extension(at=now)
            return after, Change("extension_notified", "已书面告知申请人延期", down=[self._clock_record(
                after, records_pb2.CLOCK_CHANGE_EXTENDED, now, reason="已书面告知申请人", notified=True)])

        return self._act(matter_id, actor, expected_version, transition)

    def hand_over(self, matter_id: str, to_staff: str, reason: str, *, actor: Actor,
                  expected_version: int | None = None) -> HandledMatter:
        """AB post: the backup takes the matter over; the previous owner keeps watching it."""

        to_staff = to_staff.strip().lower()
        if not to_staff:
            raise HandlingError("请选择接手的工作人员")
        if self.staff is not None and self.staff.active_name(to_staff) is None:
            raise HandlingError("接手人须是本中心在岗的工作人员账号，请从列表中选择")

        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            after = m.hand_over_to(actor=actor, at=now, to_staff=to_staff, reason=reason)
            record = records_pb2.Record()
            body = record.ownership_transferred
            body.matter_id, body.from_operator_id, body.to_operator_id = m.matter_id, m.owner, after.owner
            body.reason, body.at_ms = reason.strip(), to_unix_ms(now)
            return after, Change("hand_over", f"AB 岗交接：{m.owner or '（无）'} → {after.owner}，原因：{reason.strip()}",
                                  internal=[record])

        return self._act(matter_id, actor, expected_version, transition)

    def record_result(self, matter_id: str, *, approved: bool, summary: str, actor: Actor,
                      expected_version: int | None = None, collect_from: str = "",
                      refusal_approved_by: str = "") -> HandledMatter:
        """准予 or 不予批准, only on matters the township decides; a refusal is registered (否定报备)."""

        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            item = self._item(m)
            after = m.record_result(actor=actor, at=now, approved=approved, summary=summary, item=item,
                                    delivery_limit=self.catalog.delivery_limit_for(item),
                                    refusal_approved_by=refusal_approved_by)
            change = self._result_change(after, collect_from, conn)
            change.refusal = not approved
            return after, change

        return self._act(matter_id, actor, expected_version, transition)

    def _result_change(self, after: HandledMatter, collect_from: str, conn: Connection) -> Change:
        record = records_pb2.Record()
        body = record.result_ready
        body.matter_id, body.result_summary, body.approved = after.matter_id, after.result_summary, bool(after.approved)
        body.collect_from = collect_from or "乡镇便民服务中心"
        outcome = "办理完成" if after.approved else "未予批准"
        phone = self._applicant_phone(after.matter_id, conn)
        notify = [result_ready_sms(matter_id=after.matter_id, phone=phone, pickup_place_zh=body.collect_from)] if phone else []
        return Change("result", f"{outcome}：{after.result_summary}", down=[record], notify=notify)

    # ------------------------------------------------------------------ the county's side (escalation lands in the county issue)

    def may_decide(self, matter: HandledMatter) -> bool:
        return matter.catalog_code in self.catalog and may_decide(self.catalog.item(matter.catalog_code), self.tier)

    def escalate(self, matter_id: str, summary: str, *, actor: Actor, expected_version: int | None = None) -> HandledMatter:
        """上报: sign an escalation to the county carrying the village's own signed records. The township
        hop runs on until the county's signed receipt comes back (`record_escalated`)."""
        up = self.up
        if up is None:
            raise HandlingError("本乡镇尚未接入县政务服务中心，无法上报（请先运行 town-center county link）")

        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            after = m.send_escalation(actor=actor, at=now, opinion=summary)
            item = self._item(m)
            row = conn.execute(select(town_matter).where(town_matter.c.matter_id == matter_id)).one()
            record = records_pb2.Record()
            body = record.escalation
            body.matter_id, body.catalog_code, body.township_code = m.matter_id, m.catalog_code, up.township_code
            body.summary = summary.strip()[:500]
            body.county_limit.CopyFrom(limit_to_wire(item.hop(Tier.COUNTY).promised))
            body.township_received_at_ms = int(row.received_at_ms)
            body.village_envelopes.extend(self._village_envelopes(conn, row.author_key_id, matter_id))
            details = self.applicant(matter_id, conn=conn)
            if details is not None:
                body.sealed_applicant_for_county = seal_to(up.county_public_key, details.SerializeToString())
                body.sealed_to_key_id = up.county_key_id
            evidence = self._authorization_evidence(self._filing(conn, row))
            if evidence is not None:
                # The county's decision maker checks the 委托 too; the village's signed digest proves it unchanged.
                body.sealed_authorization_for_county = seal_to(up.county_public_key, evidence)
                body.sealed_to_key_id = up.county_key_id
            return after, Change("escalate", f"已签名上报县政务服务中心：{body.summary}（等待县级签收）", up=[record])

        return self._act(matter_id, actor, expected_version, transition)

    def _village_envelopes(self, conn: Connection, author_key_id: str, matter_id: str) -> list[envelope_pb2.Envelope]:
        """The village's own signed records of this matter (filing, materials), exactly as received."""
        rows = conn.execute(select(ingest_log.c.payload, ingest_log.c.signature).where(
            ingest_log.c.author_key_id == author_key_id,
            ingest_log.c.body_kind.in_(["request_filed", "materials_added"])).order_by(ingest_log.c.seq)).all()
        out = []
        for r in rows:
            record = records_pb2.Record.FromString(bytes(r.payload))
            body = getattr(record, record.WhichOneof("body") or "request_filed")
            if getattr(body, "matter_id", "") == matter_id:
                out.append(envelope_pb2.Envelope(payload=bytes(r.payload), signature=bytes(r.signature), key_id=author_key_id))
        return out

    def record_escalated(self, matter_id: str, *, county_receipt_at: dt.datetime,
                         also: Callable[[Connection], object] | None = None) -> HandledMatter:
        """The county's signed receipt for a 上报: the township hop is passed on and its clock stops;
        the township's replica of the county hop starts at the county's receipt time."""
        system = Actor("county", Role.DIRECTOR)

        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            after = m.escalated(at=county_receipt_at)
            hop = self._item(m).hop(Tier.COUNTY)
            county = HopClock.received(county_receipt_at, hop.promised, hop.statutory)
            return after, Change("escalated", "县政务服务中心已签收上报件，县级开始计时", down=[self._clock_record(
                after, records_pb2.CLOCK_CHANGE_STOPPED, county_receipt_at, reason="已上报县级")], county_clock=county)

        return self._act(matter_id, system, None, transition, also=also)

    def record_escalation_not_taken_in(self, matter_id: str, reason: str, *, county_clock: HopClock | None,
                                       also: Callable[[Connection], object] | None = None) -> HandledMatter:
        """The county refused to take the 上报 in (its message says why): the matter returns to the
        operator's 待上报 list with the township clock running again, and the county hop's replica stops."""
        system = Actor("county", Role.DIRECTOR)

        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            # The township clock stopped at the county's receipt time; this server's clock may be a
            # little behind the county's, and a clock never steps back.
            at = max(now, m.clock.last_event_at) if m.clock is not None else now
            after = m.escalation_not_taken_in(at=at)
            text = f"{reason}；本件回到乡镇，乡镇环节继续计时，请核实后重新上报或另行处理"
            return after, Change("county_not_taken_in", text, down=[self._clock_record(
                after, records_pb2.CLOCK_CHANGE_RESUMED, at, reason="县级未受理上报，乡镇继续办理")],
                county_clock=county_clock)

        return self._act(matter_id, system, None, transition, also=also)

    def record_county_decision(self, matter_id: str, *, approved: bool, summary: str,
                               also: Callable[[Connection], object] | None = None) -> HandledMatter:
        system = Actor("county", Role.DIRECTOR)

        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            item = self.catalog.item(m.catalog_code) if m.catalog_code in self.catalog else None
            after = m.upper_tier_decided(approved=approved, summary=summary, at=now,
                                         delivery_limit=self.catalog.delivery_limit_for(item) if item else None)
            change = self._result_change(after, "乡镇便民服务中心", conn)
            change.action, change.text_zh = "county_decision", "县级决定：" + change.text_zh
            return after, change

        return self._act(matter_id, system, None, transition, also=also)

    def record_county_needs_materials(self, matter_id: str, missing: Sequence[str], reason: str, *,
                                      also: Callable[[Connection], object] | None = None) -> HandledMatter:
        """The county asked for materials: the agent tells the applicant; the county's clock waits."""
        system = Actor("county", Role.DIRECTOR)

        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            after = m.upper_tier_needs_materials(missing_materials=tuple(missing))
            text = "县级要求补正材料：" + "、".join(after.missing_materials) + (f"（{reason}）" if reason else "")
            return after, Change("county_needs_materials", text + "；补正期间县级不计时", down=[self._clock_record(
                after, records_pb2.CLOCK_CHANGE_SUSPENDED, now, reason=text, suspension=SuspensionReason.AWAITING_MATERIALS)])

        return self._act(matter_id, system, None, transition, also=also)

    def record_county_clock(self, matter_id: str, county_clock: HopClock, text: str, *,
                            also: Callable[[Connection], object] | None = None) -> HandledMatter:
        """Follow the county's signed change of its own hop clock (suspended, resumed, extended, stopped)."""
        system = Actor("county", Role.DIRECTOR)

        def transition(m: HandledMatter, now: dt.datetime, conn: Connection) -> tuple[HandledMatter, Change]:
            return m._next(), Change("county_clock", text, county_clock=county_clock)

        return self._act(matter_id, system, None, transition, also=also)

    def note_from_county(self, conn: Connection, matter_id: str, at_ms: int, action: str, text: str) -> bool:
        """A history line for what the county said; False when the township holds no such matter."""
        if conn.execute(select(town_matter.c.matter_id).where(town_matter.c.matter_id == matter_id)).first() is None:
            return False
        conn.execute(insert(matter_event).values(matter_id=matter_id, at_ms=at_ms, actor="county", action=action,
                                                 text_zh=text, version=0))
        return True

    # ------------------------------------------------------------------ notifications

    def _applicant_phone(self, matter_id: str, conn: Connection) -> str:
        details = self.applicant(matter_id, conn=conn)
        return details.phone if details is not None else ""

    # ================================================================== figures and follow-up calls 回访

    def matter_facts(self) -> list[MatterFacts]:
        """What the figures (per village, agent, operator) need about every matter at this township."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(town_matter.c.matter_id, town_matter.c.village_code, town_matter.c.author_key_id,
                                       town_matter.c.owner, town_matter.c.received_at_ms, town_matter.c.completed_at_ms,
                                       town_matter.c.due_at_ms, town_matter.c.worst_state, town_matter.c.rating,
                                       town_matter.c.stage)).all()
            called = {r for (r,) in conn.execute(select(follow_up_call.c.matter_id)
                                                 .where(follow_up_call.c.called_at_ms.is_not(None)))}
        calendar = self.calendar

        def working_hours(received_ms: int, completed_ms: int | None) -> float | None:
            if not completed_ms or completed_ms < received_ms:
                return None
            return calendar.office_time_between(from_unix_ms(received_ms), from_unix_ms(completed_ms)).total_seconds() / 3600

        return [MatterFacts(
            working_hours=working_hours(int(r.received_at_ms), int(r.completed_at_ms) if r.completed_at_ms else None),
            matter_id=r.matter_id, village_code=r.village_code, agent_key_id=r.author_key_id, operator_id=r.owner or "（未分类）",
            received_at=from_unix_ms(int(r.received_at_ms)),
            completed_at=from_unix_ms(int(r.completed_at_ms)) if r.completed_at_ms else None,
            due_at=from_unix_ms(int(r.due_at_ms)) if r.due_at_ms else None,
            state=ClockState.from_rank(int(r.worst_state or 0)), rating=int(r.rating or 0),
            followed_up=r.matter_id in called, returned=r.stage == Stage.RETURNED.value) for r in rows]

    def draw_follow_ups(self) -> tuple[int, str]:
        """The weekly 回访 draw (003 服务回访制度): every bad review plus a random tenth of the other
        matters completed and not yet drawn. Keyed by a secret derived from the township key, so
        operators cannot predict it, and stable within a week. Returns (how many drawn, week start);
        a second draw in the same week, or one racing with it, draws nothing."""
        now = self.clock.now()
        today = self.calendar.local_date(now)
        week_start = (today - dt.timedelta(days=today.weekday())).isoformat()
        with self.store.engine.connect() as conn:
            drawn = {r for (r,) in conn.execute(select(follow_up_call.c.matter_id))}
            this_week = conn.execute(select(follow_up_call.c.matter_id)
                                     .where(follow_up_call.c.week_start == week_start).limit(1)).first()
        if this_week is not None:
            return 0, week_start
        completed = [m for m in self.matter_facts() if m.completed_at is not None and m.matter_id not in drawn]
        secret = hashlib.sha256(b"quancheng-follow-up|" + self.signer.seed()).digest()
        sample = draw_follow_up_sample(completed, week_start=dt.date.fromisoformat(week_start), secret=secret)
        if not sample:
            return 0, week_start
        try:
            with self.store.engine.begin() as conn:
                conn.execute(insert(follow_up_call), [
                    {"matter_id": m.matter_id, "week_start": week_start, "drawn_at_ms": to_unix_ms(now),
                     "caller_id": "", "rating": 0, "outcome": ""} for m in sample])
        except IntegrityError:
            return 0, week_start   # another director drew this week's sample at the same moment
        return len(sample), week_start

    def record_follow_up(self, matter_id: str, *, actor: Actor, reached: bool, rating: int, outcome: str) -> None:
        if rating not in (0, 1, 2, 3, 4, 5):
            raise HandlingError("回访评价应为 非常满意 至 非常不满意 五级之一")
        refuse_personal_data(("回访情况", outcome))
        now_ms = to_unix_ms(self.clock.now())
        with self.store.engine.begin() as conn:
            self.store.lock_own_tip(conn, self.signer.key_id)
            row = conn.execute(select(follow_up_call).where(follow_up_call.c.matter_id == matter_id).with_for_update()).first()
            if row is None:
                raise HandlingError("该办件不在本周回访抽样中")
            conn.execute(update(follow_up_call).where(follow_up_call.c.matter_id == matter_id).values(
                called_at_ms=now_ms, caller_id=actor.staff_id, reached=reached, rating=rating, outcome=outcome.strip()[:500]))
            conn.execute(insert(matter_event).values(
                matter_id=matter_id, at_ms=now_ms, actor=actor.staff_id, action="follow_up",
                text_zh=("回访已接通" if reached else "回访未接通") + (f"：{outcome.strip()}" if outcome.strip() else ""),
                version=0))
            record = records_pb2.Record()
            body = record.follow_up_called
            body.matter_id, body.called_at_ms, body.reached = matter_id, now_ms, reached
            body.rating = rating_to_wire(rating)
            body.outcome, body.caller_id = outcome.strip()[:500], actor.staff_id
            self.store.publish_in(conn, self.signer, record, [INTERNAL_AUDIENCE], now_ms=now_ms)


def _classified_text(m: HandledMatter) -> str:
    kind = m.kind
    assert kind is not None
    if kind is MatterKind.RETURNED:
        approved = f"（不予受理，经中心主任 {m.refusal_approved_by} 批准）" if m.refusal_approved_by else ""
        return f"{kind.label_zh}{approved}：{m.return_reason}"
    if kind is MatterKind.SUPPLEMENT:
        return f"{kind.label_zh}：一次性告知需补齐 " + "、".join(m.missing_materials) + "（补齐之日起计时）"
    if kind is MatterKind.PROMISED:
        return f"{kind.label_zh}：{m.written_promise}"
    if kind is MatterKind.JOINT:
        return f"{kind.label_zh}：牵头窗口 {m.lead_window}，参与部门 " + "、".join(m.departments)
    if kind is MatterKind.REPORTED:
        return f"{kind.label_zh}：待上报县政务服务中心"
    return f"{kind.label_zh}：当场办理"
