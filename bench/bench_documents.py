"""What issuing a written notice adds to a township action: classifying 承诺件 with no notice (the
reference), with the notice issued in the action's transaction (number, HTML, signature: what the
write lock waits for), and with the archive PDF laid out after the commit as the console does (what
the operator waits for), all measured in the same run on fresh SQLite files.

    .venv/bin/python -m bench.bench_documents [--matters 40]

The PDF is WeasyPrint laying out the A4 page with Noto CJK; its first call in a process loads the
fonts (shown apart as "first PDF").
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from shared.domain.catalog import MatterKind
from tests.town_fixtures import OPERATOR, VillageDevice, township


def run(root: Path, label: str, matters: int, *, documents: bool, pdf: bool) -> list[float]:
    app = township(f"sqlite:///{root / (label + '.db')}")
    try:
        if not documents:
            app.handling.documents = None
        elif not pdf:
            app.handling.documents.archive.pdf = None
        village = VillageDevice(app)
        ids = [village.file("MZ-003") for _ in range(matters)]
        times = []
        for matter_id in ids:
            started = time.perf_counter()
            app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
            times.append(time.perf_counter() - started)
        return times
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matters", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        reference = run(root, "reference", args.matters, documents=False, pdf=False)
        html_only = run(root, "html", args.matters, documents=True, pdf=False)
        with_pdf = run(root, "pdf", args.matters, documents=True, pdf=True)
    ref = statistics.median(reference)
    print(f"classify, no notice (reference): median {ref * 1000:.1f} ms over {args.matters}")
    for label, times in (("notice in the transaction", html_only),
                         ("notice + archive PDF after the commit", with_pdf[1:])):
        med = statistics.median(times)
        print(f"classify, {label}: median {med * 1000:.1f} ms ({med / ref:.2f}x reference)")
    print(f"first PDF in the process (fonts loaded): {with_pdf[0] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
