"""The director's delegation of county decisions: a staff member becomes a 受委托审批人 (`Role.APPROVER`)
on the director's word, recorded with who delegated and when, and goes back to 窗口工作人员 when the
director withdraws it. The role change and its record are one transaction, so the register never
says someone was delegated whose account says otherwise.

    delegate(engine, "liu", by="chen", now_ms=...)      # `county-hub staff delegate liu --by chen`
    withdraw(engine, "liu", by="chen", now_ms=...)      # `county-hub staff undelegate liu --by chen`
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update

from hub.errors import DelegationError
from hub.store.tables import county_delegation
from shared.console.store import staff
from shared.domain.handling import Role

__all__ = ["Delegation", "delegate", "withdraw", "active_delegations"]


@dataclass(frozen=True)
class Delegation:
    staff_id: str
    delegated_by: str
    delegated_at_ms: int


def _account(conn, staff_id: str):
    row = conn.execute(select(staff).where(staff.c.staff_id == staff_id.strip().lower())).first()
    if row is None:
        raise DelegationError(f"没有登录名为 {staff_id.strip().lower()} 的工作人员账号")
    return row


def _director(conn, by: str):
    row = _account(conn, by)
    if row.role != Role.DIRECTOR.value or row.disabled:
        raise DelegationError(f"{row.display_name}不是在用的中心主任账号：委托审批须由中心主任作出")
    return row


def delegate(engine: Engine, staff_id: str, *, by: str, now_ms: int) -> Delegation:
    """The director `by` delegates county decisions to the operator `staff_id`."""
    with engine.begin() as conn:
        director = _director(conn, by)
        target = _account(conn, staff_id)
        if target.disabled:
            raise DelegationError(f"{target.display_name}的账号已停用，不能受委托审批")
        if target.role == Role.APPROVER.value:
            raise DelegationError(f"{target.display_name}已是受委托审批人")
        if target.role != Role.OPERATOR.value:
            raise DelegationError(f"{target.display_name}是{Role(target.role).label_zh}，只能委托窗口工作人员审批")
        conn.execute(update(staff).where(staff.c.staff_id == target.staff_id).values(role=Role.APPROVER.value))
        conn.execute(insert(county_delegation).values(staff_id=target.staff_id, delegated_by=director.staff_id,
                                                      delegated_at_ms=now_ms))
    return Delegation(target.staff_id, director.staff_id, now_ms)


def withdraw(engine: Engine, staff_id: str, *, by: str, now_ms: int) -> None:
    """The director `by` withdraws the delegation: the account is a 窗口工作人员 again at once."""
    with engine.begin() as conn:
        director = _director(conn, by)
        target = _account(conn, staff_id)
        if target.role != Role.APPROVER.value:
            raise DelegationError(f"{target.display_name}不是受委托审批人，无需收回")
        conn.execute(update(staff).where(staff.c.staff_id == target.staff_id).values(role=Role.OPERATOR.value))
        conn.execute(update(county_delegation).where(county_delegation.c.staff_id == target.staff_id,
                                                     county_delegation.c.withdrawn_at_ms.is_(None))
                     .values(withdrawn_by=director.staff_id, withdrawn_at_ms=now_ms))


def active_delegations(engine: Engine) -> dict[str, Delegation]:
    """Staff id → the delegation in force (an approver added directly by `staff add --role approver`
    has none: the page then says so rather than invent a delegating director)."""
    with engine.connect() as conn:
        rows = conn.execute(select(county_delegation).where(county_delegation.c.withdrawn_at_ms.is_(None))
                            .order_by(county_delegation.c.id)).all()
    return {r.staff_id: Delegation(r.staff_id, r.delegated_by, int(r.delegated_at_ms)) for r in rows}
