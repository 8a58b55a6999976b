"""Seeding tool: a county with many escalated matters (上报件), made through the real hub code paths.

    .venv/bin/python -m bench.seed_county --db sqlite:///var/bench/county.db --matters 10000 [--townships 20]

Each township's link key is enrolled at the county and signs its own chain: first a KeyApproved for
each of its village keys, then for every matter the township's StatusUpdate (its own hop, some of
them past due, so the overdue figures have something to count) and the Escalation carrying the
village's own signed filing. The county's `RelayCore` verifies, stores and receipts them and
`CountyHandling.run_once` takes them in (both signatures checked, clock started, 受理通知书 issued,
decision and status records signed down; the
受理通知书's archive PDF is left pending, see `seed`): the same path a township's push takes, minus gRPC.
A few matters get a 督办 notice so the notice list is not empty. Adding to an existing county grows
it (each run adds `--matters`). Prints what it made and how fast.
"""
from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from hub.bootstrap import HubApp, build_app
from shared.calendar import WorkingCalendar
from shared.clock import SystemClock
from shared.domain.catalog import Tier
from shared.domain.handling import Actor, Role
from shared.envelope import GENESIS, sign_next
from shared.relay.ports import EnrollmentInfo
from shared.relay.server import PushSession
from shared.signing import Signer
from shared.wire.v1 import records_pb2

__all__ = ["seed", "open_county", "county_codes"]

_DAY_MS = 86_400_000
SEEDER = Actor("seed", Role.DIRECTOR)


def open_county(db_url: str, signer: Signer | None = None) -> HubApp:
    return build_app(db_url, signer or Signer.generate(), clock=SystemClock(), calendar=WorkingCalendar())


def county_codes(app: HubApp) -> list[str]:
    """Catalogue items the county decides (only those are escalated)."""
    return [i.code for i in app.handling.catalog if i.decided_by is Tier.COUNTY]


def _village_filing(village: Signer, code: str, catalog_code: str, matter_id: str, tip, claimed_ms: int):
    record = records_pb2.Record()
    body = record.request_filed
    body.matter_id, body.catalog_code, body.catalog_version = matter_id, catalog_code, "2026.1"
    body.village_code = code
    body.intake_outcome = records_pb2.INTAKE_OUTCOME_ACCEPT
    body.materials_brought.extend(["身份证", "户口簿"])
    body.applicant.id_number_masked = "3301**********123X"
    # One in ten applicants elderly or disabled, as the board sorts them first.
    body.applicant.elderly_or_disabled = hash(matter_id) % 10 == 0
    return sign_next(village, record, tip, claimed_ms)


def seed(app: HubApp, matters: int, *, townships: int = 20, villages_per_township: int = 5,
         chunk: int = 500, supervised: int = 30) -> float:
    """Add `matters` escalations spread over `townships` new townships; returns the seconds taken."""
    started = time.perf_counter()
    codes = county_codes(app)
    documents = app.handling.documents
    if documents is not None:
        # Laying out each 受理通知书's archive PDF takes ~0.3 s of CPU (weasyprint), 3.5 days at 1M:
        # the seed leaves them pending, as a crash between commit and layout would, and the county's
        # archive pass makes them later. Everything else of the intake runs as in production.
        documents.after_commit = lambda: None
    now_ms = int(time.time() * 1000)
    base = len(app.store.keys())
    per_township = -(-matters // townships)
    made = 0
    first_ids: list[str] = []
    for t in range(townships):
        n = min(per_township, matters - made)
        if n <= 0:
            break
        town, code = Signer.generate(), f"T{base + t + 1:03d}"
        app.store.register_approved(town.public_key, EnrollmentInfo(
            records_pb2.KEY_ROLE_TOWNSHIP, f"第{base + t + 1}乡", "", code, ""), by="seed", now_ms=0)
        villages = [(Signer.generate(), f"{code}V{v + 1:02d}") for v in range(villages_per_township)]
        village_tips = [GENESIS] * len(villages)
        tip, session = GENESIS, PushSession(peer="seed")
        # Claimed times spread over the last 30 days, increasing along the township's chain.
        step = max(1, 30 * _DAY_MS // (2 * n + len(villages) + 1))
        claimed = now_ms - 60_000 - (2 * n + len(villages) + 1) * step
        envs = []

        def push(envs: list, session: PushSession) -> None:
            for i in range(0, len(envs), 500):
                response = app.core.push(envs[i:i + 500], session)
                if len(response.receipts) != len(envs[i:i + 500]):
                    raise SystemExit(f"县级拒收了播种的记录：{response.refusals[:1]}")
            envs.clear()
            app.handling.run_once()

        for village, vcode in villages:
            record = records_pb2.Record()
            ka = record.key_approved
            ka.key_id, ka.public_key, ka.role = village.key_id, village.public_key, records_pb2.KEY_ROLE_VILLAGE_AGENT
            ka.approved_by, ka.village_code, ka.township_code = "seed", vcode, code
            claimed += step
            signed = sign_next(town, record, tip, claimed)
            envs.append(signed.envelope)
            tip = signed.tip
        for i in range(n):
            v = i % len(villages)
            village, vcode = villages[v]
            matter_id = str(uuid.uuid4())
            catalog_code = codes[i % len(codes)]
            claimed += step
            filed = _village_filing(village, vcode, catalog_code, matter_id, village_tips[v], claimed)
            village_tips[v] = filed.tip
            # The township's own hop: three days from its receipt; every fifth one still open past due.
            status = records_pb2.Record()
            su = status.status_update
            su.matter_id, su.stage, su.catalog_code, su.village_code = matter_id, records_pb2.STAGE_ESCALATED, \
                catalog_code, vcode
            su.kind = records_pb2.MATTER_KIND_REPORTED
            hop = su.hops.add()
            hop.tier, hop.started_at_ms, hop.due_at_ms = records_pb2.TIER_TOWNSHIP, claimed, claimed + 3 * _DAY_MS
            if i % 5:
                hop.stopped_at_ms = claimed + _DAY_MS
            su.message = "乡镇已初审，上报县级"
            signed = sign_next(town, status, tip, claimed)
            envs.append(signed.envelope)
            tip = signed.tip
            escalation = records_pb2.Record()
            body = escalation.escalation
            body.matter_id, body.catalog_code, body.township_code = matter_id, catalog_code, code
            body.summary = "乡镇初审通过，材料齐全"
            body.township_received_at_ms = claimed
            body.village_envelopes.append(filed.envelope)
            signed = sign_next(town, escalation, tip, claimed)
            envs.append(signed.envelope)
            tip = signed.tip
            if len(first_ids) < supervised:
                first_ids.append(matter_id)
            if len(envs) >= 2 * chunk:
                push(envs, session)
        push(envs, session)
        made += n
    for matter_id in first_ids:
        app.handling.issue_supervision(matter_id, "请说明进度并尽快办结", actor=SEEDER)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="SQLAlchemy URL of the county store (made if missing)")
    parser.add_argument("--matters", type=int, default=10_000)
    parser.add_argument("--townships", type=int, default=20)
    parser.add_argument("--key-file", type=Path, default=None,
                        help="the bench county's key seed (hex); default beside a SQLite file, made if missing")
    args = parser.parse_args()
    key_file = args.key_file
    if key_file is None:
        if not args.db.startswith("sqlite:///"):
            parser.error("非 SQLite 数据库请用 --key-file 指定县级测试密钥文件（同一数据库每次须用同一密钥）")
        key_file = Path(args.db.removeprefix("sqlite:///") + ".bench-key")
    # The county's key is bound to its database: growing a county again must sign with the same one.
    if key_file.exists():
        signer = Signer(bytes.fromhex(key_file.read_text().strip()))
    else:
        signer = Signer.generate()
        key_file.write_text(signer.seed().hex() + "\n")
        key_file.chmod(0o600)
    app = open_county(args.db, signer)
    try:
        seconds = seed(app, args.matters, townships=args.townships)
    finally:
        app.close()
    print(f"已播种 {args.matters:,} 件上报件（{args.townships} 个乡镇），用时 {seconds:.1f} 秒"
          f"（每秒 {args.matters / seconds:,.0f} 件）")


if __name__ == "__main__":
    main()
