"""The township's 好差评 figures leave it only as counts (`docs/evaluation.md`, "Figures that leave the
township"):

* up to the county, per month, per village and kind (`EvaluationFigures`), signed into the county link
  chain, so the county sees every township side by side;
* down to each village agent, his own figures and 差评 with reason and 整改 status (`AgentFigures`,
  audience that agent's key), for the laptop's 我的评价 page.

Neither carries an evaluator, an applicant, a comment, a staff member or a matter. A record is sent
only when its figures changed since the last one sent (kept as a digest in the township's meta), and
`FiguresPublisher.run_due` does the whole pass at most every `every_after`, from the intake loop.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from shared.clock import to_unix_ms
from shared.domain.catalog import MatterKind
from shared.domain.evaluation import Level, RectificationState, parse_period
from shared.domain.front_desk import CaseKind
from shared.relay.ports import KeyState
from shared.wire.v1 import records_pb2
from shared.wire_views import KIND_TO_WIRE
from town_center.evaluation import Evaluations
from town_center.front_desk.tables import desk_case
from town_center.store.evaluation_tables import evaluation, follow_up_finding
from town_center.store.matter_tables import town_matter
from town_center.store.tables import agent_key

__all__ = ["month_figures", "agent_figures", "FiguresPublisher", "recent_months", "SENT_META"]

log = logging.getLogger("town_center.evaluation_figures")

SENT_META = "evaluation_figures_sent:"      # + "county:YYYY-MM" or "agent:KEY": digest of what was sent
_LAST_PASS_META = "evaluation_figures_pass_at_ms"
_CELL_FIELDS = ("rated", "satisfaction_points", "agent_entered", "bad", "bad_closed", "followed_up", "follow_up_good",
                "complaints", "complaints_answered_late")


def recent_months(today: dt.date, count: int) -> list[str]:
    """This month and the `count - 1` before it, newest first (YYYY-MM)."""
    out, y, m = [], today.year, today.month
    for _ in range(count):
        out.append(f"{y}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out


def _kind_wire(kind: str | None) -> int:
    try:
        return int(KIND_TO_WIRE[MatterKind(kind)]) if kind else records_pb2.MATTER_KIND_UNSPECIFIED
    except (ValueError, KeyError):
        return records_pb2.MATTER_KIND_UNSPECIFIED


def _bounds(month: str) -> tuple[int, int]:
    period = parse_period(month, dt.date(2000, 1, 1))   # a YYYY-MM period does not depend on "today"
    return to_unix_ms(period.start_at), to_unix_ms(period.end_at)


def month_figures(conn: Connection, month: str, *, now: dt.datetime) -> records_pb2.Record:
    """The township's `EvaluationFigures` for `month` (YYYY-MM), as it stands at `now`: the month's
    villager ratings (with their 差评 closed so far), 回访 recorded and 投诉 registered in it."""
    start_ms, end_ms = _bounds(month)
    now_ms = to_unix_ms(now)
    cells: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: dict.fromkeys(_CELL_FIELDS, 0))
    for r in conn.execute(select(evaluation.c.village_code, evaluation.c.kind, evaluation.c.by_villager, evaluation.c.valid,
                                 evaluation.c.level, evaluation.c.rect_state)
                          .where(evaluation.c.rated_at_ms >= start_ms, evaluation.c.rated_at_ms < end_ms)):
        cell = cells[(r.village_code or "", _kind_wire(r.kind))]
        if not r.by_villager:
            cell["agent_entered"] += 1
            continue
        if not r.valid:
            continue   # 复核 found it malicious: it counts nowhere
        level = Level(int(r.level))
        cell["rated"] += 1
        cell["satisfaction_points"] += level.score
        if level.is_bad:
            cell["bad"] += 1
            cell["bad_closed"] += r.rect_state == RectificationState.CLOSED.value
    place = {m.matter_id: (m.village_code or "", _kind_wire(m.kind)) for m in conn.execute(
        select(town_matter.c.matter_id, town_matter.c.village_code, town_matter.c.kind))}
    for f in conn.execute(select(follow_up_finding).where(follow_up_finding.c.recorded_at_ms >= start_ms,
                                                          follow_up_finding.c.recorded_at_ms < end_ms)):
        cell = cells[place.get(f.matter_id, ("", records_pb2.MATTER_KIND_UNSPECIFIED))]
        cell["followed_up"] += 1
        cell["follow_up_good"] += bool(f.reached and f.attitude_ok and f.efficiency_ok and f.by_the_rules_ok
                                       and f.integrity_ok and 0 < int(f.satisfaction) <= 3)
    for c in conn.execute(select(desk_case.c.linked_matter_id, desk_case.c.due_at_ms, desk_case.c.answered_at_ms).where(
            desk_case.c.kind == CaseKind.COMPLAINT.value, desk_case.c.received_at_ms >= start_ms,
            desk_case.c.received_at_ms < end_ms)):
        # A complaint about a staff member rather than a matter counts for the township as a whole.
        cell = cells[place.get(c.linked_matter_id or "", ("", records_pb2.MATTER_KIND_UNSPECIFIED))]
        cell["complaints"] += 1
        due = int(c.due_at_ms or 0)
        # 004 投诉制度 六: same or next day, a week when complex; unanswered past it counts as late too.
        cell["complaints_answered_late"] += bool(due) and (int(c.answered_at_ms or 0) > due if c.answered_at_ms
                                                           else now_ms > due)
    record = records_pb2.Record()
    body = record.evaluation_figures
    body.month, body.computed_at_ms = month, now_ms
    for (village, kind), counts in sorted(cells.items()):
        cell = body.cells.add()
        cell.village_code, cell.kind = village, kind
        for k, v in counts.items():
            setattr(cell, k, v)
    return record


def _successors(conn: Connection) -> dict[str, list[str]]:
    """Each approved agent key with the keys it rotated from: a laptop's figures follow its agent."""
    rows = conn.execute(select(agent_key.c.key_id, agent_key.c.state, agent_key.c.rotated_from,
                               agent_key.c.role)).all()
    prior = {r.key_id: r.rotated_from for r in rows}
    out: dict[str, list[str]] = {}
    for r in rows:
        if r.state != KeyState.APPROVED.value or int(r.role or 0) not in (0, records_pb2.KEY_ROLE_VILLAGE_AGENT):
            continue
        chain, k = [r.key_id], prior.get(r.key_id)
        while k and k not in chain:
            chain.append(k)
            k = prior.get(k)
        out[r.key_id] = chain
    return out


def agent_figures(conn: Connection, key_ids: Iterable[str], months: list[str], *, now: dt.datetime) -> records_pb2.Record:
    """The `AgentFigures` of the agent whose laptop keys are `key_ids` over `months` (newest first)."""
    keys = list(key_ids)
    oldest_ms, _ = _bounds(months[-1])
    _, newest_end_ms = _bounds(months[0])
    rows = conn.execute(select(evaluation.c.rated_at_ms, evaluation.c.by_villager, evaluation.c.valid, evaluation.c.level,
                               evaluation.c.reason, evaluation.c.catalog_code, evaluation.c.rect_state,
                               evaluation.c.rect_due_at_ms)
                        .where(evaluation.c.agent_key_id.in_(keys), evaluation.c.rated_at_ms >= oldest_ms,
                               evaluation.c.rated_at_ms < newest_end_ms)
                        .order_by(evaluation.c.rated_at_ms.desc())).all()
    bounds = [(m, *_bounds(m)) for m in months]
    by_month: dict[str, dict[str, Any]] = {}
    record = records_pb2.Record()
    body = record.agent_figures
    body.computed_at_ms = to_unix_ms(now)
    for r in rows:
        month = next(m for m, a, b in bounds if a <= int(r.rated_at_ms) < b)
        entry = by_month.setdefault(month, {"levels": [0] * 5, "agent_entered": 0, "points": 0})
        if not r.by_villager:
            entry["agent_entered"] += 1
            continue
        if not r.valid:
            continue
        level = Level(int(r.level))
        entry["levels"][level.value - 1] += 1
        entry["points"] += level.score
        if level.is_bad:
            bad = body.bad_reviews.add()
            bad.month, bad.catalog_code, bad.reason = month, r.catalog_code, r.reason or "other"
            bad.rectification = r.rect_state or "pending"
            bad.due_at_ms = int(r.rect_due_at_ms or 0) if r.rect_state else 0
    for m in months:
        if m in by_month:
            e = by_month[m]
            row = body.months.add()
            row.month, row.agent_entered, row.satisfaction_points = m, e["agent_entered"], e["points"]
            row.level_counts.extend(e["levels"])
    return record


def _digest(record: records_pb2.Record) -> str:
    copy = records_pb2.Record()
    copy.CopyFrom(record)
    kind = copy.WhichOneof("body")
    if kind:
        getattr(copy, kind).computed_at_ms = 0   # the same figures computed later are not news
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()


class FiguresPublisher:
    """Sends what changed: the county's monthly figures (the last `county_months`, as a 差评 rated in one
    month may close in the next ones) and each agent's own (the last twelve months)."""

    def __init__(self, app: Any, *, every_after: dt.timedelta = dt.timedelta(minutes=15), county_months: int = 3) -> None:
        self.app = app
        self.every_after = every_after
        self.county_months = county_months

    def run_due(self) -> int:
        """The pass, unless one ran less than `every_after` ago (in any township process); returns how
        many records were sent."""
        store, now = self.app.store, self.app.clock.now()
        last = int(store.get_meta(_LAST_PASS_META) or 0)
        if last and to_unix_ms(now) - last < self.every_after.total_seconds() * 1000:
            return 0
        store.set_meta(_LAST_PASS_META, str(to_unix_ms(now)))
        return self.run()

    def run(self) -> int:
        app, now = self.app, self.app.clock.now()
        Evaluations(app.handling).import_agent_entered()
        today = app.handling.calendar.local_date(now)
        sent = 0
        link = getattr(app, "county_link", None)
        if link is not None:
            for month in recent_months(today, self.county_months):
                with app.store.engine.begin() as conn:
                    record = month_figures(conn, month, now=now)
                    sent += self._send_in(conn, f"county:{month}", record,
                                          lambda c, r: link.append_in(c, r, now_ms=to_unix_ms(now)))
            if sent:
                link.wake()
        months = recent_months(today, 12)
        with app.store.engine.connect() as conn:
            agents = _successors(conn)
        for key_id, chain in agents.items():
            with app.store.engine.begin() as conn:
                record = agent_figures(conn, chain, months, now=now)
                if not record.agent_figures.months and not app.store.get_meta_in(conn, SENT_META + "agent:" + key_id):
                    continue   # nothing rated yet, nothing sent before: no empty page to push
                record.audience.key_ids.append(key_id)

                def publish(c: Connection, r: records_pb2.Record, key: str = key_id) -> None:
                    app.store.lock_own_tip(c, app.handling.signer.key_id)
                    app.store.publish_in(c, app.handling.signer, r, [key], now_ms=to_unix_ms(now))

                sent += self._send_in(conn, "agent:" + key_id, record, publish)
        return sent

    def _send_in(self, conn: Connection, what: str, record: records_pb2.Record, send: Any) -> int:
        digest = _digest(record)
        if self.app.store.get_meta_in(conn, SENT_META + what) == digest:
            return 0
        send(conn, record)
        self.app.store.set_meta_in(conn, SENT_META + what, digest)
        return 1
