"""P1 and P2: data drift on 25 columns, 100k reference rows vs 1M current rows.

P1 compares Quorum's ``compute_drift`` with Evidently 0.7 ``DataDriftPreset`` (time, peak
memory above the loaded frames, and the verdict on every column). P2 compares it with a bare
numpy/scipy kernel of the same tests, written below. Each side runs in its own process that
loads the same Parquet files; Evidently runs with ``.venv-evidently/bin/python`` (see
benchmarks/README.md). Peak memory is the process's peak resident set size (VmHWM, reset
through /proc/self/clear_refs before each run) minus the resident size after loading.

    .venv/bin/python benchmarks/drift_p1_p2.py --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
EVIDENTLY_PYTHON = ROOT / ".venv-evidently" / "bin" / "python"
N_NUMERIC = 20
N_CATEGORICAL = 5


# ----------------------------------------------------------------------------- data


def make_frames(rows_reference: int, rows_current: int, seed: int = 20240501) -> tuple:
    """Deterministic P1 frames: 20 numeric and 5 categorical columns, some drifting."""
    rng = np.random.default_rng(seed)
    ref: dict[str, Any] = {}
    cur: dict[str, Any] = {}
    nr, nc = rows_reference, rows_current
    for i in range(N_NUMERIC):
        name = f"num_{i:02d}"
        ref[name], cur[name] = _numeric_pair(i, rng, nr, nc)
    levels = [
        (["a", "b", "c"], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2]),
        (["red", "green", "blue", "grey"], [0.4, 0.3, 0.2, 0.1], [0.2, 0.3, 0.2, 0.3]),
        ([f"city_{k}" for k in range(30)], None, "shift"),
        (["yes", "no"], [0.7, 0.3], [0.69, 0.31]),
        (["basic", "plus", "pro", "team", "enterprise"], [0.3, 0.3, 0.2, 0.1, 0.1], "new"),
    ]
    for j, (values, p_ref, p_cur) in enumerate(levels):
        name = f"cat_{j}"
        ref[name], cur[name] = _categorical_pair(values, p_ref, p_cur, rng, nr, nc)
    return pd.DataFrame(ref), pd.DataFrame(cur)


def _numeric_pair(i: int, rng: np.random.Generator, nr: int, nc: int) -> tuple:
    kind = i % 5
    if i == 4:  # lognormal, current shifted by half a reference standard deviation
        r = rng.lognormal(0.0, 1.0, nr)
        sd = float(np.sqrt((np.e - 1) * np.e))
        return r, rng.lognormal(0.0, 1.0, nc) + 0.5 * sd
    if i == 9:  # few distinct values (numeric, <= 5): Jensen-Shannon like a category
        return (
            rng.choice([0.0, 1.0, 2.0], nr, p=[0.5, 0.3, 0.2]),
            rng.choice([0.0, 1.0, 2.0], nc, p=[0.4, 0.3, 0.3]),
        )
    shift = 0.0 if i % 3 else 0.25 * (1 + i % 4)  # every third column drifts
    if kind == 0:
        r, c = rng.normal(10, 2, nr), rng.normal(10 + 2 * shift, 2, nc)
    elif kind == 1:
        r, c = rng.exponential(3.0, nr), rng.exponential(3.0 * (1 + shift), nc)
    elif kind == 2:
        r, c = rng.uniform(0, 100, nr), rng.uniform(0 + 30 * shift, 100 + 30 * shift, nc)
    elif kind == 3:
        r, c = rng.gamma(2.0, 2.0, nr), rng.gamma(2.0 + shift, 2.0, nc)
    else:
        r = np.round(rng.normal(50, 15, nr))
        c = np.round(rng.normal(50 + 15 * shift, 15, nc))
    if i in (1, 7):  # some missing and infinite values, ignored by every test
        c[rng.random(nc) < 0.02] = np.nan
        r[rng.random(nr) < 0.01] = np.nan
        c[:3] = np.inf
    return r, c


def _categorical_pair(
    values: list[str], p_ref: Any, p_cur: Any, rng: np.random.Generator, nr: int, nc: int
) -> tuple:
    arr = np.array(values, dtype=object)
    if p_ref is None:
        p_ref = np.full(len(values), 1 / len(values))
    r = rng.choice(arr, nr, p=p_ref)
    if isinstance(p_cur, str) and p_cur == "shift":
        weights = np.linspace(1.0, 3.0, len(values))
        c = rng.choice(arr, nc, p=weights / weights.sum())
    elif isinstance(p_cur, str) and p_cur == "new":
        arr_new = np.append(arr, "custom")
        c = rng.choice(arr_new, nc, p=[0.25, 0.25, 0.2, 0.1, 0.1, 0.1])
    else:
        c = rng.choice(arr, nc, p=p_cur)
    missing = rng.random(nc) < 0.01
    c[missing] = None
    return r, c


# ----------------------------------------------------------------------------- bare kernel


def bare_kernel(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict[str, str]) -> dict:
    """The same tests and choice rules as numpy/scipy calls, without the product around them."""
    from scipy import stats
    from scipy.spatial import distance

    out: dict[str, tuple[str, float, bool]] = {}
    for col, kind in kinds.items():
        if kind == "numeric":
            r = reference[col].to_numpy(dtype=np.float64)
            c = current[col].to_numpy(dtype=np.float64)
            r = np.sort(r[np.isfinite(r)])
            c = np.sort(c[np.isfinite(c)])
            both = np.concatenate((r, c))
            order = np.argsort(both, kind="stable")
            merged = both[order]
            steps = np.diff(merged)
            n_unique = np.count_nonzero(steps) + 1
            if n_unique > 5:
                if r.size <= 1000:
                    p = stats.ks_2samp(r, c).pvalue
                    out[col] = ("ks", p, p < 0.05)
                    continue
                cdf_r = np.cumsum(order[:-1] < r.size) / r.size
                cdf_c = np.cumsum(order[:-1] >= r.size) / c.size
                w = np.dot(np.abs(cdf_r - cdf_c), steps) / max(np.std(r), 0.001)
                out[col] = ("wasserstein", w, w >= 0.1)
                continue
            values = merged[np.concatenate(([True], steps != 0))]
            rc = np.diff(np.searchsorted(r, values, "left"), append=r.size)
            cc = np.diff(np.searchsorted(c, values, "left"), append=c.size)
        else:
            rv = reference[col].value_counts()
            cv = current[col].value_counts()
            keys = rv.index.union(cv.index)
            rc = rv.reindex(keys, fill_value=0).to_numpy()
            cc = cv.reindex(keys, fill_value=0).to_numpy()
        if rc.sum() <= 1000:
            p = stats.chi2_contingency(np.vstack([rc, cc]), correction=False).pvalue
            out[col] = ("chi2", p, p < 0.05)
        else:
            js = distance.jensenshannon(rc / rc.sum(), cc / cc.sum())
            out[col] = ("jensenshannon", js, js >= 0.1)
    return out


def scipy_per_column(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict) -> dict:
    """For orientation: the obvious scipy call per numeric column, no shared sorting."""
    from scipy import stats

    out = {}
    for col, kind in kinds.items():
        if kind != "numeric":
            continue
        r = reference[col].to_numpy(dtype=np.float64)
        c = current[col].to_numpy(dtype=np.float64)
        r, c = r[np.isfinite(r)], c[np.isfinite(c)]
        w = stats.wasserstein_distance(r, c) / max(np.std(r), 0.001)
        out[col] = ("wasserstein", w, w >= 0.1)
    return out


# ----------------------------------------------------------------------------- workers


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _evidently_run(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[c for c, k in kinds.items() if k == "numeric"],
        categorical_columns=[c for c, k in kinds.items() if k == "categorical"],
    )
    report = Report([DataDriftPreset()])
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    methods = {
        "Wasserstein distance (normed)": "wasserstein",
        "Jensen-Shannon distance": "jensenshannon",
        "K-S p_value": "ks",
        "chi-square p_value": "chi2",
        "Z-test p_value": "z",
        "PSI": "psi",
    }
    out = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if "ValueDrift" not in config.get("type", ""):
            continue
        test = methods.get(config["method"], config["method"])
        value, threshold = float(metric["value"]), float(config["threshold"])
        if test in ("ks", "z"):
            drifted = value <= threshold
        elif test == "chi2":
            drifted = value < threshold
        else:
            drifted = value >= threshold
        out[config["column"]] = (test, value, drifted)
    return out


def _quorum_run(reference: pd.DataFrame, current: pd.DataFrame, kinds: dict) -> dict:
    from core.monitoring.drift import compute_drift

    result = compute_drift(reference, current, kinds=kinds)
    return {c.column: (c.test, c.value, c.drifted) for c in result.columns}


def worker(which: str, data_dir: Path, repeat: int) -> dict:
    if which == "quorum":
        sys.path.insert(0, str(ROOT))
    runners = {
        "quorum": _quorum_run,
        "kernel": bare_kernel,
        "scipy": scipy_per_column,
        "evidently": _evidently_run,
    }
    run = runners[which]
    _import_libraries(which)
    reference = pd.read_parquet(data_dir / "reference.parquet")
    current = pd.read_parquet(data_dir / "current.parquet")
    kinds = json.loads((data_dir / "kinds.json").read_text())
    gc.collect()
    loaded = _rss_kib("VmRSS")
    times, peaks = [], []
    result: dict = {}
    for _ in range(repeat):
        gc.collect()
        before = _rss_kib("VmRSS")
        _reset_peak()
        start = time.perf_counter()
        result = run(reference, current, kinds)
        times.append(time.perf_counter() - start)
        peaks.append((_rss_kib("VmHWM") - before) / 1024)
    return {
        "which": which,
        "times": times,
        "peak_mib": peaks,
        "loaded_mib": loaded / 1024,
        "result": result,
        "versions": {"pandas": pd.__version__, "numpy": np.__version__, **_extra_versions(which)},
    }


def _import_libraries(which: str) -> None:
    """Import what each side needs before measuring, so no run pays for imports."""
    import scipy.spatial.distance  # noqa: F401
    import scipy.stats  # noqa: F401

    if which == "quorum":
        import core.monitoring.drift  # noqa: F401
    if which == "evidently":
        import evidently.presets  # noqa: F401


def _extra_versions(which: str) -> dict:
    if which != "evidently":
        return {}
    import evidently

    return {"evidently": evidently.__version__}


# ----------------------------------------------------------------------------- driver


def _plain(value: Any) -> Any:
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value))


def _spawn(python: Path | str, which: str, data_dir: Path, repeat: int) -> dict:
    out = data_dir / f"{which}.json"
    env = {**os.environ, "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"}
    cmd = [str(python), str(Path(__file__).resolve()), "--worker", which]
    cmd += ["--data", str(data_dir), "--repeat", str(repeat), "--out", str(out)]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return json.loads(out.read_text())


def _summary(label: str, res: dict) -> str:
    t, m = res["times"], res["peak_mib"]
    return (
        f"{label:<22} time min {min(t):8.3f} s  median {statistics.median(t):8.3f} s   "
        f"peak above loaded frames: min {min(m):8.1f} MiB  max {max(m):8.1f} MiB"
    )


def _verdict_table(quorum: dict, other: dict) -> tuple[list[str], int, float]:
    lines = [
        f"| {'column':<8} | {'test':<13} | {'Quorum value':>22} | {'Evidently value':>22} "
        f"| {'abs diff':>8} | same verdict |",
        "|---|---|---|---|---|---|",
    ]
    same, worst = 0, 0.0
    for col, (test, value, drifted) in quorum.items():
        o_test, o_value, o_drifted = other.get(col, ("-", float("nan"), None))
        diff = abs(value - o_value)
        worst = max(worst, diff) if o_test == test else worst
        agree = o_drifted == drifted and o_test == test
        same += agree
        verdict = ("yes" if agree else "NO") + (" (drift)" if drifted else "")
        tests = test if o_test == test else f"{test} vs {o_test}"
        lines.append(
            f"| {col:<8} | {tests:<13} | {value:22.15g} | {o_value:22.15g} "
            f"| {diff:8.1e} | {verdict} |"
        )
    return lines, same, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-reference", type=int, default=100_000)
    parser.add_argument("--rows-current", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--worker", choices=["quorum", "kernel", "scipy", "evidently"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    if args.worker:
        res = worker(args.worker, args.data, args.repeat)
        args.out.write_text(json.dumps(res, default=_plain))
        return

    with tempfile.TemporaryDirectory(prefix="quorum-p1-") as tmp:
        data_dir = Path(tmp)
        sys.path.insert(0, str(ROOT))
        from core.monitoring.drift import column_kinds

        reference, current = make_frames(args.rows_reference, args.rows_current)
        kinds = column_kinds(reference)
        reference.to_parquet(data_dir / "reference.parquet")
        current.to_parquet(data_dir / "current.parquet")
        (data_dir / "kinds.json").write_text(json.dumps(kinds))
        del reference, current
        print(
            f"frames: {args.rows_reference:,} reference x {args.rows_current:,} current rows, "
            f"{sum(k == 'numeric' for k in kinds.values())} numeric and "
            f"{sum(k == 'categorical' for k in kinds.values())} categorical columns; "
            f"{args.repeat} repetitions each, one process per side"
        )
        results = {
            w: _spawn(sys.executable, w, data_dir, args.repeat) for w in ("quorum", "kernel")
        }
        results["scipy"] = _spawn(sys.executable, "scipy", data_dir, args.repeat)
        if not args.skip_evidently:
            if EVIDENTLY_PYTHON.exists():
                results["evidently"] = _spawn(EVIDENTLY_PYTHON, "evidently", data_dir, args.repeat)
            else:
                print(f"Evidently skipped: {EVIDENTLY_PYTHON} not found (see benchmarks/README.md)")
    _report(results)


def _report(results: dict) -> None:
    q, k = results["quorum"], results["kernel"]
    print(_summary("Quorum compute_drift", q))
    print(_summary("bare numpy/scipy kernel", k))
    print(_summary("scipy per column (W1)", results["scipy"]))
    mismatch = [c for c, v in q["result"].items() if k["result"][c][2] != v[2]]
    print(
        f"P2: Quorum / kernel time  min {min(q['times']) / min(k['times']):.2f}x  "
        f"median {statistics.median(q['times']) / statistics.median(k['times']):.2f}x "
        f"(bar <= 1.3x); verdicts differing from the kernel: {mismatch or 'none'}"
    )
    e = results.get("evidently")
    if not e:
        return
    print(_summary(f"Evidently {e['versions'].get('evidently')}", e))
    lines, same, worst = _verdict_table(q["result"], e["result"])
    peak_ratio = max(q["peak_mib"]) / max(min(e["peak_mib"]), 1e-9)
    print(
        f"P1: Evidently / Quorum time  min {min(e['times']) / min(q['times']):.1f}x  "
        f"median {statistics.median(e['times']) / statistics.median(q['times']):.1f}x "
        f"(bar >= 30x); Quorum peak / Evidently peak {peak_ratio:.3f} (bar <= 0.1); "
        f"same test and verdict on {same}/{len(q['result'])} columns; "
        f"largest score difference {worst:.1e}"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
