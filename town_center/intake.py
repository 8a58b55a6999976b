"""Folds what the villages sent (the verified, stored ingest log) into the township's matters.

The ingest log is the source of truth; this is a projection over it, per author in chain order,
with the position kept in `intake_cursor` and moved in the same transaction as the matters it
changed. A crash mid-way repeats nothing and loses nothing; two processes racing on one author
serialize on the cursor row. A record that cannot apply (a sign-off for a matter the township
has not finished, say) becomes a line in the matter's history instead of stopping the intake.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from shared.bulk import insert_rows
from shared.clock import from_unix_ms, to_unix_ms
from shared.domain.catalog import CatalogItem, Tier
from shared.domain.deadlines import HopClock, StopReason
from shared.domain.front_desk import WINDOW_VILLAGE_CODE
from shared.domain.handling import HandledMatter, Stage, matter_to_json_dict
from shared.errors import DeadlineError, HandlingError
from shared.wire.v1 import envelope_pb2, records_pb2
from town_center.handling import ACCEPTANCE_HOP, VILLAGE_HOP, Change, HandlingService
from town_center.store.matter_tables import intake_cursor, matter_event, town_matter
from town_center.store.tables import agent_key, ingest_log

__all__ = ["Intake", "RATING_ZH"]

log = logging.getLogger(__name__)

RATING_ZH = {1: "非常满意", 2: "满意", 3: "基本满意", 4: "不满意", 5: "非常不满意"}
# Records folded per transaction: the write lock is held tens of milliseconds at a time.
_BATCH = 250
# Authors folded at once, each batch in its own transaction. During a storm every writer
# transaction waits its turn behind the relay's (shared.sqlite.WriterLine, first come first
# served), so one folding thread spent most of a pass in that line; several keep several places in
# it (docs/performance.md, "Intake"). On SQLite the transactions still run one at a time, on
# PostgreSQL they serialize on the township's chain tip row that each takes first.
_WORKERS = 4
_FORWARDED = frozenset({"result_handed_over", "signed_off", "withdrawn"})


class Intake:
    def __init__(self, handling: HandlingService, *, workers: int = _WORKERS) -> None:
        # No clock of its own: a village record takes effect at the township's receipt time of it.
        self.handling = handling
        self.store = handling.store
        self.workers = max(1, workers)
        self._lock = threading.Lock()

    def run_once(self) -> int:
        """Apply every stored record not yet applied; returns how many were applied.

        Each transaction folds at most `_BATCH` records of one author, so the write lock is held
        for tens of milliseconds at a time and relay writers waiting in line go between batches
        (shared.sqlite: writers of a file queue first come, first served). Authors with records to
        fold take turns, a batch each, on up to `workers` threads; no author is folded by two
        threads at once, so each author's records still apply in chain order."""
        with self._lock:
            with self.store.engine.connect() as conn:
                authors = [(k, int(t)) for k, t in conn.execute(select(agent_key.c.key_id, agent_key.c.tip_seq))]
                done = {k: int(s) for k, s in conn.execute(select(intake_cursor.c.author_key_id, intake_cursor.c.seq))}
            pending = deque((k, tip) for k, tip in authors if done.get(k, 0) < tip)
            if not pending:
                return 0
            self._ensure_cursors([k for k, _ in pending if k not in done])
            turns = threading.Lock()

            def fold() -> int:
                applied = 0
                while True:
                    with turns:
                        if not pending:
                            return applied
                        key_id, tip = pending.popleft()
                    n, position = self._author_batch(key_id)
                    applied += n
                    if n and position < tip:
                        with turns:
                            pending.append((key_id, tip))   # its next batch after the other authors' turns

            threads = min(self.workers, len(pending))
            if threads == 1:
                return fold()
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="town-intake-fold") as pool:
                futures = [pool.submit(fold) for _ in range(threads)]
                return sum(f.result() for f in futures)

    def _ensure_cursors(self, key_ids: list[str]) -> None:
        """Cursor rows for authors folded for the first time: one transaction for all of them (one
        wait in the writer line, not one per author)."""
        if not key_ids:
            return
        try:
            with self.store.engine.begin() as conn:
                held = {k for (k,) in conn.execute(select(intake_cursor.c.author_key_id)
                                                   .where(intake_cursor.c.author_key_id.in_(key_ids)))}
                missing = [k for k in key_ids if k not in held]
                if missing:
                    conn.execute(insert(intake_cursor), [dict(author_key_id=k, seq=0) for k in missing])
        except IntegrityError:
            for key_id in key_ids:   # another process made some of them at the same moment
                self._ensure_cursor(key_id)

    def _ensure_cursor(self, key_id: str) -> None:
        with self.store.engine.connect() as conn:
            if conn.execute(select(intake_cursor.c.seq).where(intake_cursor.c.author_key_id == key_id)).first():
                return
        try:
            with self.store.engine.begin() as conn:
                conn.execute(insert(intake_cursor).values(author_key_id=key_id, seq=0))
        except IntegrityError:
            pass  # another process made it first; the row is what we need

    def _author_batch(self, key_id: str) -> tuple[int, int]:
        with self.store.engine.begin() as conn:
            self.store.lock_own_tip(conn, self.handling.signer.key_id)   # same lock order as staff actions
            # The row lock serializes two township processes folding the same author.
            position = int(conn.execute(select(intake_cursor.c.seq).where(intake_cursor.c.author_key_id == key_id)
                                        .with_for_update()).scalar_one())
            village = conn.execute(select(agent_key.c.village_code).where(agent_key.c.key_id == key_id)).scalar() or ""
            rows = conn.execute(select(ingest_log.c.seq, ingest_log.c.payload, ingest_log.c.signature, ingest_log.c.receipt_time_ms)
                                .where(ingest_log.c.author_key_id == key_id, ingest_log.c.seq > position)
                                .order_by(ingest_log.c.seq).limit(_BATCH)).all()
            filings: list[tuple[int, records_pb2.Record, int]] = []
            for r in rows:
                record = records_pb2.Record()
                record.ParseFromString(bytes(r.payload))  # verified before it was stored
                if record.HasField("request_filed"):
                    # Filings make new matters: gathered and written a table at a time (most records are these).
                    filings.append((int(r.seq), record, int(r.receipt_time_ms)))
                elif record.HasField("document_issued"):
                    # A receipt or form the laptop printed: kept by its hashes for `document verify` (no matter change).
                    self._document(conn, key_id, int(r.seq), record, int(r.receipt_time_ms))
                else:
                    self._file_all(conn, key_id, village, filings)
                    filings = []
                    envelope = envelope_pb2.Envelope(payload=bytes(r.payload), signature=bytes(r.signature), key_id=key_id)
                    self._apply_one(conn, key_id, village, int(r.seq), record, int(r.receipt_time_ms), envelope)
                position = int(r.seq)
            self._file_all(conn, key_id, village, filings)
            if rows:
                conn.execute(update(intake_cursor).where(intake_cursor.c.author_key_id == key_id).values(seq=position))
        return len(rows), position

    def _apply_one(self, conn: Connection, key_id: str, village: str, seq: int, record: records_pb2.Record,
                   receipt_ms: int, envelope: envelope_pb2.Envelope) -> None:
        try:
            # A savepoint per record: one that cannot apply is rolled back alone and noted,
            # so it never holds back the device's later records.
            with conn.begin_nested():
                self._apply(conn, key_id, village, record, receipt_ms, envelope)
        except Exception as exc:  # noqa: BLE001 - see above; the log names the record, not its content
            log.warning("record %s/%d not applied: %s", key_id[:8], seq, exc.__class__.__name__)
            self._note_failure(conn, record, receipt_ms, key_id)

    def _document(self, conn: Connection, key_id: str, seq: int, record: records_pb2.Record, receipt_ms: int) -> None:
        documents = self.handling.documents
        if documents is None:
            return
        try:
            with conn.begin_nested():
                documents.take_in(conn, record.document_issued, key_id=key_id, seq=seq, received_at_ms=receipt_ms)
        except Exception as exc:  # noqa: BLE001 - as `_apply_one`: noted, never holding back the device's later records
            log.warning("record %s/%d not applied: %s", key_id[:8], seq, exc.__class__.__name__)

    def _file_all(self, conn: Connection, key_id: str, village: str, filings: list[tuple[int, records_pb2.Record, int]]) -> None:
        """New matters from consecutive filings: checked together, then one insert per table. If
        the batch cannot be written as a whole, each filing is applied on its own (and noted when
        it fails), exactly as any other record."""
        if not filings:
            return
        try:
            with conn.begin_nested():
                self._filed_batch(conn, key_id, village, [(record, receipt_ms) for _seq, record, receipt_ms in filings])
            return
        except Exception as exc:  # noqa: BLE001 - retried one by one below, which notes what fails
            log.info("filings of %s applied one by one after %s", key_id[:8], exc.__class__.__name__)
        for seq, record, receipt_ms in filings:
            self._apply_one(conn, key_id, village, seq, record, receipt_ms, envelope_pb2.Envelope())

    # ------------------------------------------------------------------ one record

    def _apply(self, conn: Connection, key_id: str, village: str, record: records_pb2.Record, receipt_ms: int,
               envelope: envelope_pb2.Envelope) -> None:
        kind = record.WhichOneof("body")
        if kind == "request_filed":
            self._filed(conn, key_id, village, record, receipt_ms)
            return
        matter_id = _matter_id_of(record, kind)
        if not matter_id:
            return
        row = conn.execute(select(town_matter).where(town_matter.c.matter_id == matter_id).with_for_update()).first()
        if row is None:
            log.warning("record %s from %s names unknown matter %s", kind, key_id, matter_id)
            return
        if row.author_key_id != key_id and not self._same_device_line(conn, row.author_key_id, key_id):
            self._note(conn, matter_id, receipt_ms, key_id, "refused", f"另一台设备（{key_id[:8]}）发来本件的记录，未采用")
            return
        actor = f"village:{key_id[:8]}"
        now = from_unix_ms(receipt_ms)
        matter = self.handling.decode(row)
        try:
            catalog = self.handling.catalog
            item = catalog.item(matter.catalog_code) if matter.catalog_code in catalog else None
            after, change, extra = _village_transition(matter, record, kind, now, item)
            if village == WINDOW_VILLAGE_CODE and kind in ("result_handed_over", "signed_off"):
                # The township window handed the result over and the applicant signed and rated there in person.
                # Like the village's, the history every operator reads does not say what the rating was.
                change.text_zh = ("窗口已将结果当面交付申请人" if kind == "result_handed_over" else
                                  "申请人在窗口签收确认" + ("（申请人已评价，评价内容仅中心主任和督查可见）"
                                                      if record.signed_off.rating else ""))
        except HandlingError as exc:
            self._note(conn, matter_id, receipt_ms, actor, "not_applied", f"村代办员记录未能应用：{exc}")
            return
        if after is None:
            self._note(conn, matter_id, receipt_ms, actor, change.action, change.text_zh, extra)
            return
        if kind in _FORWARDED and matter.escalation_sent_at is not None and self.handling.up is not None:
            # The county decided this matter: it verifies the villager's own hand-over, sign-off or withdrawal.
            forwarded = records_pb2.Record()
            forwarded.village_records_forwarded.matter_id = matter_id
            forwarded.village_records_forwarded.village_envelopes.append(envelope)
            change.up.append(forwarded)
        self.handling.commit_in(conn, row, matter, after, change, actor_label=actor, now=now, extra=extra)

    def _note_failure(self, conn: Connection, record: records_pb2.Record, at_ms: int, key_id: str) -> None:
        matter_id = _matter_id_of(record, record.WhichOneof("body")) or (
            record.request_filed.matter_id if record.HasField("request_filed") else "")
        if not matter_id or len(matter_id) > 64:
            return
        exists = conn.execute(select(town_matter.c.matter_id).where(town_matter.c.matter_id == matter_id)).first()
        if exists is not None:
            self._note(conn, matter_id, at_ms, f"village:{key_id[:8]}", "not_applied", "村代办员记录未能应用（记录内容不符合要求）")

    def _same_device_line(self, conn: Connection, original: str, key_id: str) -> bool:
        """A rotated key carries on its predecessor's matters."""
        current = key_id
        for _ in range(16):
            previous = conn.execute(select(agent_key.c.rotated_from).where(agent_key.c.key_id == current)).scalar()
            if not previous:
                return False
            if previous == original:
                return True
            current = previous
        return False

    def _note(self, conn: Connection, matter_id: str, at_ms: int, actor: str, action: str, text: str,
              extra: dict[str, Any] | None = None) -> None:
        if extra:
            conn.execute(update(town_matter).where(town_matter.c.matter_id == matter_id).values(**extra))
        conn.execute(insert(matter_event).values(matter_id=matter_id, at_ms=at_ms, actor=actor[:64], action=action,
                                                 text_zh=text, version=0))

    def _filed(self, conn: Connection, key_id: str, village: str, record: records_pb2.Record, receipt_ms: int) -> None:
        self._filed_batch(conn, key_id, village, [(record, receipt_ms)])

    def _filed_batch(self, conn: Connection, key_id: str, village: str,
                     filings: list[tuple[records_pb2.Record, int]]) -> None:
        """New matters, their first history line and their acceptance and 报送 clocks. A filing
        with missing or over-long identifiers, or for a matter already held, makes nothing; a
        lookup code already used by another matter is dropped (it would reveal that matter)."""
        usable: list[tuple[records_pb2.Record, int]] = []
        for record, receipt_ms in filings:
            body = record.request_filed
            if not body.matter_id or len(body.matter_id) > 64 or len(body.catalog_code) > 32 or len(body.village_code) > 32:
                log.warning("filing from %s refused: missing or over-long identifiers", key_id[:8])
                continue
            usable.append((record, receipt_ms))
        if not usable:
            return
        ids = [r.request_filed.matter_id for r, _ in usable]
        held = {m for (m,) in conn.execute(select(town_matter.c.matter_id).where(town_matter.c.matter_id.in_(set(ids))))}
        lookups = {bytes(r.request_filed.lookup_code_hash) for r, _ in usable} - {b""}
        taken = ({bytes(h) for (h,) in conn.execute(select(town_matter.c.lookup_code_hash)
                                                      .where(town_matter.c.lookup_code_hash.in_(lookups)))}
                 if lookups else set())
        catalog = self.handling.catalog
        deadlines = self.handling.deadlines
        matters: list[dict[str, Any]] = []
        events: list[tuple[Any, ...]] = []
        clocks: list[tuple[str, str, HopClock, dt.datetime]] = []
        for record, receipt_ms in usable:
            body = record.request_filed
            if body.matter_id in held:
                log.warning("matter %s filed twice (second by %s); kept the first", body.matter_id, key_id)
                continue
            held.add(body.matter_id)
            received_at = from_unix_ms(receipt_ms)
            item = catalog.item(body.catalog_code) if body.catalog_code in catalog else None
            matter = HandledMatter.received(body.matter_id, body.catalog_code, Tier.TOWNSHIP, received_at, item)
            lookup = bytes(body.lookup_code_hash) or None
            if lookup is not None and lookup in taken:
                lookup = None  # a colliding code would reveal another matter; this one gets no public lookup
            elif lookup is not None:
                taken.add(lookup)
            if matter.acceptance_clock is not None:
                clocks.append((body.matter_id, ACCEPTANCE_HOP, matter.acceptance_clock, received_at))
            walk_in = village == WINDOW_VILLAGE_CODE   # the township window's own filing: no village leg
            village_clock = None if walk_in else _village_clock(item, record.header.claimed_time_ms, received_at)
            if village_clock is not None:
                clocks.append((body.matter_id, VILLAGE_HOP, village_clock, received_at))
            matters.append(dict(
                # The village is the enrolled key's, never the record's claim (issue 15).
                matter_id=body.matter_id, author_key_id=key_id, village_code=village,
                catalog_code=body.catalog_code, stage=matter.stage.value, kind=None, owner="", version=matter.version,
                state_json=json.dumps(matter_to_json_dict(matter), ensure_ascii=False, separators=(",", ":")),
                lookup_code_hash=lookup, id_masked=body.applicant.id_number_masked[:32],
                id_lookup_hash=bytes(body.applicant.id_lookup_hash) or None,
                sealed_details=bytes(body.applicant.sealed_details) or None, door_to_door=body.door_to_door,
                elderly_or_disabled=body.applicant.elderly_or_disabled,
                materials_json=json.dumps(list(body.materials_brought), ensure_ascii=False),
                tolerated_json=json.dumps([t.material_id for t in body.tolerated_missing], ensure_ascii=False),
                intake_note=body.note[:500], received_at_ms=receipt_ms, claimed_filed_at_ms=0 if walk_in else record.header.claimed_time_ms,
                due_at_ms=None, updated_at_ms=receipt_ms, completed_at_ms=None, worst_state=0, rating=0,
                rating_comment="", signed_off_at_ms=None))
            events.append((body.matter_id, receipt_ms, f"village:{key_id[:8]}", "filed",
                           _filed_text(body, matter, item, walk_in=walk_in),
                           matter.version))
        if not matters:
            return
        # The acceptance clock's due instant is copied onto the matter row (the inbox filters on it).
        dues = deadlines.insert_clocks(clocks, conn=conn)
        for m in matters:
            m["due_at_ms"] = dues.get((m["matter_id"], ACCEPTANCE_HOP))
        columns = tuple(matters[0])
        insert_rows(conn, town_matter, columns, [tuple(m[c] for c in columns) for m in matters])
        insert_rows(conn, matter_event, ("matter_id", "at_ms", "actor", "action", "text_zh", "version"), events)


def _filed_text(body: records_pb2.RequestFiled, matter: HandledMatter, item: CatalogItem | None, *,
                walk_in: bool = False) -> str:
    door = body.door_to_door
    text = "村代办员报送代办申请" + ("（上门服务收件）" if door else "")
    if walk_in:   # signed by the township window's own key (town_center.front_desk.window), not a village's claim
        text = "乡镇便民服务中心窗口现场登记，窗口签名（申请人签名已采集）"
    if matter.stage is Stage.VILLAGE_OWN:
        text = "村代办员报备村级自办事项（由村便民服务室办理，乡镇跟踪进度）" + ("（上门服务）" if door else "")
    if body.intake_outcome == records_pb2.INTAKE_OUTCOME_ACCEPT_WITH_TOLERANCE:
        text += "，容缺受理：" + "、".join(f"{_material_name(item, t.material_id)}（承诺 {t.supply_by_date} 前补交）"
                                      for t in body.tolerated_missing)
    if body.intake_outcome == records_pb2.INTAKE_OUTCOME_RETURN:
        text += f"；村级初审意见：应退回（{body.return_reason}）"
    return text


def _matter_id_of(record: records_pb2.Record, kind: str | None) -> str:
    if kind in ("materials_added", "withdrawn", "result_handed_over", "signed_off", "follow_up_called",
                "appointment_made", "visit_recorded"):
        return str(getattr(record, kind).matter_id)
    return ""


def _village_transition(m: HandledMatter, record: records_pb2.Record, kind: str | None, now: dt.datetime,
                        item: CatalogItem | None = None) -> tuple[HandledMatter | None, Change, dict[str, Any]]:
    """What a village record does to the township's matter: a new value, or (None, history line)."""
    if kind == "materials_added":
        body = record.materials_added
        names = "、".join(_material_name(item, i) for i in body.material_ids)
        hint = "，请核对后登记“材料已补齐”" if m.stage is Stage.WAITING_MATERIALS else ""
        return None, Change("materials_added", f"村代办员补交材料：{names}{hint}"), {}
    if kind == "withdrawn":
        after = m.withdrawn(at=now)
        return after, Change("withdrawn", f"申请人撤回：{record.withdrawn.reason}"), {}
    if kind == "result_handed_over":
        after = m.handed_over()
        return after, Change("handed_over", "代办员已将结果交付申请人"), {}
    if kind == "signed_off":
        body = record.signed_off
        after = m.signed_off(at=now)
        rating = int(body.rating)
        # The agent typed this rating on his laptop: 代为录入, counted apart from the villager's own; the
        # history every operator reads does not say what it was (docs/evaluation.md, confidentiality).
        text = "申请人签收确认" + ("（代办员代为录入了评价，评价内容仅中心主任和督查可见）" if rating else "")
        return after, Change("signed_off", text), {
            "rating": rating, "rating_comment": body.comment[:500], "signed_off_at_ms": to_unix_ms(now)}
    if kind == "follow_up_called":
        body = record.follow_up_called
        return None, Change("village_follow_up", "村代办员回访" + ("已接通" if body.reached else "未接通")
                             + (f"：{body.outcome}" if body.outcome else "")), {}
    if kind == "appointment_made":
        return None, Change("appointment", "村代办员已预约：" + (record.appointment_made.purpose or "上门服务")), {}
    if kind == "visit_recorded":
        return None, Change("visit", "村代办员已上门服务：" + (record.visit_recorded.outcome or "")), {}
    return None, Change("other", kind or ""), {}



def _material_name(item: CatalogItem | None, material_id: str) -> str:
    """Operators read material names, never the catalogue's ids."""
    if item is not None:
        for m in item.materials:
            if m.id == material_id:
                return m.name
    return "目录外材料"


def _village_clock(item: CatalogItem | None, claimed_ms: int, received_at: dt.datetime) -> HopClock | None:
    """The village's 报送 leg, from the villager's request to this receipt, on the catalogue's village
    limit. The request time is the laptop's claim (the only witness of it); a claim later than the
    receipt, or one before the epoch, is not a request time at all, so no clock is kept."""
    if item is None or Tier.VILLAGE not in item.limits or item.decided_by is Tier.VILLAGE or claimed_ms <= 0:
        return None
    requested_at = from_unix_ms(claimed_ms)
    if requested_at > received_at:
        return None
    hop = item.hop(Tier.VILLAGE)
    try:
        return HopClock.received(requested_at, hop.promised, hop.statutory).stop(received_at, StopReason.PASSED_ON)
    except DeadlineError:
        return None
