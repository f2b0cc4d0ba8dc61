"""P5: server render time of the home, model and monitoring pages, large store vs demo store.

Both stores are measured in the same run with streamlit.testing.v1.AppTest, signed in as a
demo reviewer. For each repetition and store: caches are cleared, each page is rendered once
cold and then re-rendered warm. Bar: large / small <= 1.5x.

    .venv/bin/python benchmarks/page_render_p5.py --small sqlite:////tmp/p5/small.db \
        --large sqlite:////tmp/p5L/large.db --artifact-store /tmp/p5/artifacts
    .venv/bin/python benchmarks/page_render_p5.py ... --profile /tmp/p5-profile
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

import streamlit as st  # noqa: E402
from sqlmodel import col, select  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from core import config  # noqa: E402
from core.db import Database  # noqa: E402
from core.models import RoleGrant, User  # noqa: E402

MODEL = "credit-default-scorer"
MONITORING_PAGE = "pages/5_Monitoring.py"
TIMEOUT = 300


@dataclass
class Timing:
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    failed: str = ""


class PageFailed(Exception):
    pass


@dataclass(frozen=True)
class PageCase:
    name: str
    path: str
    params: dict[str, str]
    then: Callable[[AppTest], AppTest] | None = None  # a second action whose rerun is timed


def open_older_version(at: AppTest) -> AppTest:
    box = at.selectbox(key="models_version")
    return box.select(
        box.options and min(int(o.removeprefix("v").split(" ")[0]) for o in box.options)
    )


def cases() -> list[PageCase]:
    found = [
        PageCase("home", "app.py", {}),
        PageCase("model", "pages/1_Models.py", {"model": MODEL}),
        PageCase("model, open version", "pages/1_Models.py", {"model": MODEL}, open_older_version),
    ]
    if (ROOT / MONITORING_PAGE).exists():
        found.append(PageCase("monitoring", MONITORING_PAGE, {"model": MODEL}))
    return found


def use_store(url: str, artifacts: str) -> int:
    os.environ["QUORUM_DATABASE_URL"] = url
    os.environ["QUORUM_ARTIFACT_STORE"] = artifacts
    os.environ.setdefault("QUORUM_AUTH", "demo")
    config.reset_settings()
    st.cache_data.clear()
    st.cache_resource.clear()
    db = Database(url)
    with db.read() as session:
        reviewer = session.exec(
            select(User.id)
            .join(RoleGrant, col(RoleGrant.user_id) == User.id)
            .where(col(User.is_demo), RoleGrant.role == "reviewer")
            .order_by(col(User.id))
        ).first()
    db.dispose()
    if reviewer is None:
        raise SystemExit(f"{url} has no demo reviewer; seed it with `quorum admin demo seed`.")
    return reviewer


def app_for(case: PageCase, user_id: int) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state["quorum_user_id"] = user_id
    if case.path != "app.py":
        at.switch_page(case.path)
    for key, value in case.params.items():
        at.query_params[key] = value
    return at


def timed(action: Callable[[], AppTest]) -> tuple[float, AppTest]:
    started = time.perf_counter()
    at = action()
    seconds = time.perf_counter() - started
    if at.exception:
        raise PageFailed(at.exception[0].message.splitlines()[0][:200])
    if not at.title:
        raise PageFailed("the page drew no title: the sign-in or page switch did not work")
    return seconds, at


def measure(case: PageCase, user_id: int, warm: int, timing: Timing) -> None:
    if timing.failed:
        return
    try:
        _measure(case, user_id, warm, timing)
    except PageFailed as error:
        timing.failed = str(error)


def _measure(case: PageCase, user_id: int, warm: int, timing: Timing) -> None:
    at = app_for(case, user_id)
    if case.then is None:
        seconds, at = timed(at.run)
        timing.cold.append(seconds)
        for _ in range(warm):
            timing.warm.append(timed(at.run)[0])
        return
    at.run()
    then = case.then
    seconds, at = timed(lambda: then(at).run())
    timing.cold.append(seconds)
    for _ in range(warm):
        timing.warm.append(timed(at.run)[0])


def profile(case: PageCase, user_id: int, out: Path) -> None:
    from pyinstrument import Profiler

    at = app_for(case, user_id)
    at.run()
    if case.then is not None:
        at = case.then(at)
    profiler = Profiler(async_mode="disabled")
    with profiler:
        at.run()
    out.mkdir(parents=True, exist_ok=True)
    name = case.name.replace(", ", "-").replace(" ", "-")
    (out / f"{name}.txt").write_text(profiler.output_text(unicode=False, show_all=False))


def stats(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", required=True, help="URL of the demo store")
    parser.add_argument("--large", required=True, help="URL of the large store (large_store.py)")
    parser.add_argument("--artifact-store", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument(
        "--profile", type=Path, help="write pyinstrument profiles of the large store"
    )
    args = parser.parse_args(argv)
    stores = {"small": args.small, "large": args.large}
    results = {(s, c.name): Timing() for s in stores for c in cases()}
    warmup = use_store(args.small, args.artifact_store)
    for case in cases():  # imports and first-use costs, not counted
        measure(case, warmup, 0, Timing())
    for rep in range(args.repeat):
        for store, url in stores.items():
            user_id = use_store(url, args.artifact_store)
            for case in cases():
                measure(case, user_id, args.warm, results[(store, case.name)])
        print(f"repetition {rep + 1} of {args.repeat} done", flush=True)
    report(results)
    if args.profile:
        user_id = use_store(args.large, args.artifact_store)
        for case in cases():
            if not any(results[(s, case.name)].failed for s in stores):
                profile(case, user_id, args.profile)
        print(f"profiles of the large store in {args.profile}")


def report(results: dict[tuple[str, str], Timing]) -> None:
    header = (
        "| page | small cold min / med (s) | large cold min / med (s) | cold ratio (med) "
        "| small warm min / med (s) | large warm min / med (s) | warm ratio min / med |"
    )
    print(header)
    print("|" + "---|" * 7)
    for case in cases():
        small, large = results[("small", case.name)], results[("large", case.name)]
        if small.failed or large.failed:
            print(f"| {case.name} | failed: {small.failed or large.failed} |")
            continue
        sc, lc = stats(small.cold), stats(large.cold)
        sw, lw = stats(small.warm), stats(large.warm)
        print(
            f"| {case.name} | {sc[0]:.3f} / {sc[1]:.3f} | {lc[0]:.3f} / {lc[1]:.3f} "
            f"| {lc[1] / sc[1]:.2f}x | {sw[0]:.3f} / {sw[1]:.3f} | {lw[0]:.3f} / {lw[1]:.3f} "
            f"| {lw[0] / sw[0]:.2f}x / {lw[1] / sw[1]:.2f}x |"
        )


if __name__ == "__main__":
    main()
