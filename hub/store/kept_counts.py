"""The board's totals kept per (township, stage, elderly or disabled), changed in the same transaction
as the matter they count, so the board reads a handful of rows instead of counting every matter
(docs/performance.md, county pages).

Every write to `county_matter.stage` or `county_dossier.elderly_or_disabled` goes through `move`;
`scanned` is the fresh count the kept one is tested against and the migration back-fills from.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite

from hub.store.tables import county_board_count, county_dossier, county_matter

__all__ = ["BoardKey", "move", "board_totals", "scanned", "kept"]

# (township code, stage, elderly or disabled)
BoardKey = tuple[str, str, bool]


def move(conn: Connection, *, add: BoardKey | None = None, remove: BoardKey | None = None) -> None:
    """Count a matter under `add` and no longer under `remove`, inside the caller's transaction. Rows
    are touched in key order, so two transactions moving counts never wait on each other crosswise."""
    if add == remove:
        return
    changes = sorted([(k, d) for k, d in ((add, 1), (remove, -1)) if k is not None])
    for (code, stage, elderly), delta in changes:
        _bump(conn, code, stage, elderly, delta)


def _bump(conn: Connection, code: str, stage: str, elderly: bool, delta: int) -> None:
    t = county_board_count
    values = {"township_code": code, "stage": stage, "elderly_or_disabled": bool(elderly), "n": delta}
    # An upsert: the first matter of a township and stage makes the row, later ones add to it, and two
    # intakes making it at once on PostgreSQL do not collide on the primary key.
    stmt = (postgresql.insert(t) if conn.dialect.name == "postgresql" else sqlite.insert(t)).values(**values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.township_code, t.c.stage, t.c.elderly_or_disabled],
                                            set_={"n": t.c.n + stmt.excluded.n}))


def board_totals(conn: Connection, *, township_code: str | None = None,
                 stages: Iterable[str] | None = None) -> tuple[int, int]:
    """(matters, of which elderly or disabled) on the board under the same filters as its page."""
    t = county_board_count.c
    query = select(t.elderly_or_disabled, func.sum(t.n)).group_by(t.elderly_or_disabled)
    if township_code:
        query = query.where(t.township_code == township_code)
    if stages is not None:
        query = query.where(t.stage.in_(list(stages)))
    by_flag = {bool(flag): int(n or 0) for flag, n in conn.execute(query)}
    return by_flag.get(False, 0) + by_flag.get(True, 0), by_flag.get(True, 0)


def kept(conn: Connection) -> dict[BoardKey, int]:
    """Every kept count that is not zero."""
    t = county_board_count.c
    return {(c, s, bool(e)): int(n) for c, s, e, n in conn.execute(select(t.township_code, t.stage, t.elderly_or_disabled, t.n))
            if n}


def scanned(conn: Connection) -> dict[BoardKey, int]:
    """The same counts by one pass over every matter: the reference for tests."""
    m, d = county_matter.c, county_dossier.c
    elderly = func.coalesce(d.elderly_or_disabled, False)
    query = (select(m.township_code, m.stage, elderly, func.count())
             .select_from(county_matter.outerjoin(county_dossier, d.matter_id == m.matter_id))
             .group_by(m.township_code, m.stage, elderly))
    return {(c, s, bool(e)): int(n) for c, s, e, n in conn.execute(query) if n}
