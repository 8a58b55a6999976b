"""The village agent on its cheap laptop: recording a request, memory while serving, cold start.

    .venv/bin/python -m bench.bench_village_agent
    .venv/bin/python -m bench.bench_village_agent --requests 500 --matters 10000 --keep

1. Record-a-request latency: `AgentService.file_request` end to end (validate, seal to the
   township, sign, encrypt the name, commit with `synchronous=FULL`, i.e. including the fsync),
   over `--requests` requests on a real data folder. Goal p95 < 50 ms.
2. RSS: the same folder is filled to `--matters` matters, then `village-agent serve` runs as a
   subprocess; after fetching the matter list (first and a deep page) its VmRSS and VmHWM are read
   from /proc/PID/status. Goal < 150 MB.
3. Cold start: from starting that process (which also unlocks the key with the real scrypt cost)
   to the first 200 answer for the matter list. Goal < 2 s.

Figures are printed, never asserted: a benchmark informs, tests decide.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.catalog import load_catalog  # noqa: E402 - after the sys.path line above
from shared.signing import Signer  # noqa: E402 - after the sys.path line above
from tests.village_fixtures import SIGNATURE_PNG, villager  # noqa: E402 - after the sys.path line above
from village_agent.bootstrap import init_agent, open_agent  # noqa: E402 - after the sys.path line above
from village_agent.services import AgentService, RequestForm  # noqa: E402 - after the sys.path line above

PASSPHRASE = "bench-passphrase-1"
GOAL_P95_MS = 50.0
GOAL_RSS_MB = 150.0
GOAL_START_S = 2.0
START_TIMEOUT_S = 60.0


def _form(rng: random.Random, items: list) -> RequestForm:
    item = rng.choice(items)
    person = villager(rng)
    # A realistic mix: most bring everything, some are short of an auxiliary material and commit to a date.
    aux = [m.id for m in item.auxiliary_materials]
    brought = [m.id for m in item.main_materials] + (aux if rng.random() < 0.7 else [])
    commitments = {} if set(aux) <= set(brought) else {m: "2026-12-20" for m in aux}
    return RequestForm(applicant_name=person["name"], id_number=person["id_number"], phone=person["phone"],
                       address=person["address"], catalog_code=item.code, materials_brought=brought,
                       commitments=commitments, authorization_method="drawn_signature", authorization_evidence=SIGNATURE_PNG)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def record_latency(service: AgentService, n: int, rng: random.Random) -> list[float]:
    items = list(service.catalog)
    took = []
    for _ in range(n):
        form = _form(rng, items)
        t0 = time.perf_counter()
        service.file_request(form)
        took.append((time.perf_counter() - t0) * 1000)
    return took


def fill(service: AgentService, total: int, rng: random.Random) -> float:
    items = list(service.catalog)
    t0 = time.perf_counter()
    have = service.store.count_matters()
    for i in range(have, total):
        service.file_request(_form(rng, items))
        if (i + 1) % 2000 == 0:
            print(f"  … 已登记 {i + 1} 件", flush=True)
    return time.perf_counter() - t0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])  # kB
    return out


def serve_figures(root: Path) -> tuple[float, dict[str, int], int]:
    port = _free_port()
    script = Path(sys.executable).parent / "village-agent"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "village_agent.cli"]
    env = {**os.environ, "QUANCHENG_PASSPHRASE": PASSPHRASE}
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([*command, "serve", "--data", str(root), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"village-agent serve exited: {proc.stderr.read().decode(errors='replace') if proc.stderr else ''}")
            if time.perf_counter() - t0 > START_TIMEOUT_S:
                raise RuntimeError("village-agent serve did not answer in time")
            try:
                if _get(base + "/") == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.01)
        start_s = time.perf_counter() - t0
        pages = 0
        # The list as the agent uses it: first page, a deep page, one status filter, the new-request form.
        for path in ("/", "/?page=100", "/?status=recorded", "/matters/new", "/sync", "/appointments", "/"):
            assert _get(base + path) == 200, path
            pages += 1
        return start_s, _proc_status(proc.pid), pages
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _verdict(ok: bool) -> str:
    return "达标 OK" if ok else "未达标 MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--matters", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--keep", action="store_true", help="keep the data folder and print where it is")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    # The disk under the working tree, not tmpfs: the fsync has to reach a real file system.
    workdir = Path(tempfile.mkdtemp(prefix="bench-village-", dir=REPO / "var" if (REPO / "var").is_dir() else None))
    root = workdir / "agent"
    try:
        township = Signer.generate()
        init_agent(root, PASSPHRASE, agent_name="王芳", village_code="V001", village_name="东山村", township_code="T01",
                   township_name="青石镇", township_address="127.0.0.1:1", township_public_key=township.public_key)
        service = open_agent(root, PASSPHRASE)
        print(f"data folder: {root}  (catalogue {len(load_catalog())} items)")
        took = record_latency(service, args.requests, rng)
        p50, p95 = statistics.median(took), _percentile(took, 0.95)
        print(f"fill to {args.matters} matters …", flush=True)
        fill_s = fill(service, args.matters, rng)
        matters = service.store.count_matters()
        service.store.close()
        db_mb = (root / "agent.db").stat().st_size / 1e6
        start_s, status, pages = serve_figures(root)
        rss_mb, hwm_mb = status.get("VmRSS", 0) / 1024, status.get("VmHWM", 0) / 1024

        print()
        print(f"record a request ({args.requests} × file_request, fsync included)")
        print(f"  p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   max {max(took):7.2f} ms   "
              f"goal p95 < {GOAL_P95_MS:.0f} ms   {_verdict(p95 < GOAL_P95_MS)}")
        print(f"  (filled the rest to {matters} matters in {fill_s:.1f} s; agent.db {db_mb:.1f} MB)")
        print(f"serve with {matters} matters, after {pages} page loads")
        print(f"  VmRSS {rss_mb:7.1f} MB   (peak VmHWM {hwm_mb:.1f} MB)   goal < {GOAL_RSS_MB:.0f} MB   {_verdict(hwm_mb < GOAL_RSS_MB)}")
        print("cold start to first 200 on / (process start, key unlock, open db, first page)")
        print(f"  {start_s:7.2f} s   goal < {GOAL_START_S:.0f} s   {_verdict(start_s < GOAL_START_S)}")
    finally:
        if args.keep:
            print(f"kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
