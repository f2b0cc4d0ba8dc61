"""P7: the approval pack on the demo store, as the Compliance page builds it.

Measures, in one run and on one freshly seeded demo store (or the one given), `export_pack` of
the high-risk demo model's latest version as PDF against the baseline of the same pack exported
as HTML (the same data, comparison and charts, and the same HTML, without the PDF step). Each
side is repeated (min and median of >= 3). Bar: the PDF pack in at most 5 s.

    .venv/bin/python benchmarks/pack_p7.py --repeat 3
    .venv/bin/python benchmarks/pack_p7.py --store sqlite:////tmp/p7/demo.db --artifacts /tmp/p7/a
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "credit-default-scorer"
BAR_SECONDS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store", help="a seeded demo store URL (default: seed a new one)")
    parser.add_argument("--artifacts", help="its artifact store (with --store)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pack_p7-"))
    url = args.store or f"sqlite:///{work / 'demo.db'}"
    os.environ["QUORUM_DATABASE_URL"] = url
    os.environ["QUORUM_ARTIFACT_STORE"] = args.artifacts or str(work / "artifacts")

    from sqlmodel import col, select

    from core import demo, migrate, packs
    from core.db import Database
    from core.models import MLModel, ModelVersion
    from core.services import users

    if not args.store:
        started = time.perf_counter()
        migrate.upgrade(url)
        demo.seed(Database(url), with_models=True)
        print(f"seeded the demo store in {time.perf_counter() - started:.1f} s ({url})")
    db = Database(url)
    casey = users.principal_by_email(db, "casey@demo.quorum")
    with db.read() as session:
        model = session.exec(select(MLModel).where(MLModel.name == MODEL)).one()
        number = session.exec(
            select(ModelVersion.number)
            .where(ModelVersion.model_id == model.id)
            .order_by(col(ModelVersion.number).desc())
        ).first()
    assert number is not None
    packs.export_pack(db, casey, MODEL, number, "html")  # warm imports, fonts and templates

    times: dict[str, list[float]] = {"html (baseline)": [], "pdf": []}
    sizes: dict[str, int] = {}
    for _ in range(max(args.repeat, 3)):
        for fmt, label in (("html", "html (baseline)"), ("pdf", "pdf")):
            started = time.perf_counter()
            exported = packs.export_pack(db, casey, MODEL, number, fmt)
            times[label].append(time.perf_counter() - started)
            sizes[label] = len(exported.data)

    print(f"\n{MODEL} v{number}, {max(args.repeat, 3)} repetitions per side, same run")
    print(f"{'side':<18}{'min s':>8}{'median s':>10}{'bytes':>10}")
    for label, values in times.items():
        print(f"{label:<18}{min(values):>8.2f}{statistics.median(values):>10.2f}{sizes[label]:>10}")
    from core import reports
    from core.services.compliance.pack import assemble_pack

    pack = assemble_pack(db, casey, MODEL, number)
    steps: dict[str, list[float]] = {"render html only": [], "render pdf only": []}
    for _ in range(max(args.repeat, 3)):
        started = time.perf_counter()
        reports.render_html(pack)
        steps["render html only"].append(time.perf_counter() - started)
        started = time.perf_counter()
        reports.render_pdf(pack)
        steps["render pdf only"].append(time.perf_counter() - started)
    for label, values in steps.items():
        print(f"{label:<18}{min(values):>8.2f}{statistics.median(values):>10.2f}")
    pdf, html = times["pdf"], times["html (baseline)"]
    print(
        f"ratio pdf / html: min {min(pdf) / min(html):.2f}x, "
        f"median {statistics.median(pdf) / statistics.median(html):.2f}x"
    )
    verdict = "met" if statistics.median(pdf) <= BAR_SECONDS else "NOT met"
    print(f"bar: PDF pack at most {BAR_SECONDS:.0f} s (median): {verdict}")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
