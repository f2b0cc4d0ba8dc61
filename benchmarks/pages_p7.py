"""P7: what a person waits for each page, from the click on its link to the app being idle.

One `streamlit run app.py` (started before any timing) on a copy of the demo store, headless
Debian Chromium through async Playwright. For every page, and for a demo model opened on
Models: a fresh browser session signed in through the demo session cookie opens Home, then
the page's sidebar link is clicked (first visit in the session) and clicked again (a warm
rerun of the same page). A click's time runs from pointerdown until the app reports
`notRunning` after the run it started, exactly as `load_p6.py` detects idle. Beside it, the
server time AppTest measures for the same page and person (first run of a fresh AppTest,
then a rerun). Baseline, in the same run: the same two clicks on the lightest page, Profile
and tokens (the page gate, the sidebar and three short sections). Bars: first visit <= 1.5 s,
warm rerun <= 0.5 s, for every page.

    .venv/bin/python benchmarks/pages_p7.py --repeat 3
    .venv/bin/python benchmarks/pages_p7.py --store /tmp/seed/quorum.db --artifact-store /tmp/seed/artifacts
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.chdir(ROOT)

from load_p6 import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    LOST,
    TIMEOUT_MS,
    free_port,
    settle,
    start_server,
    timed_click,
)
from playwright.async_api import Browser, async_playwright  # noqa: E402

COOKIE_SECRET = "p7-benchmark-cookie-secret-" + "5" * 32
BASELINE = "Profile and tokens"
FIRST_BAR, WARM_BAR = 1.5, 0.5
MODEL = "bike-demand-forecaster"


@dataclass(frozen=True)
class Case:
    name: str
    path: str  # the page file, for AppTest
    link: str  # the sidebar link's label
    who: str  # demo email of a person who may open it
    model: str | None = None  # open this model on the page after the first visit


CASES = (
    Case("Home", "app.py", "Home", "riley@demo.quorum"),
    Case("Models", "pages/1_Models.py", "Models", "riley@demo.quorum"),
    Case("Models: a demo model", "pages/1_Models.py", "Models", "riley@demo.quorum", MODEL),
    Case("Reviews", "pages/3_Reviews.py", "Reviews", "riley@demo.quorum"),
    Case("Deployments", "pages/4_Deployments.py", "Deployments", "riley@demo.quorum"),
    Case("Monitoring", "pages/5_Monitoring.py", "Monitoring", "riley@demo.quorum"),
    Case("Compliance", "pages/6_Compliance.py", "Compliance", "casey@demo.quorum"),
    Case("Register", "pages/2_Register.py", "Register a version", "dana@demo.quorum"),
    Case("Scoring", "pages/45_Batch_scoring.py", "Batch scoring", "dana@demo.quorum"),
    Case("Audit", "pages/7_Audit.py", "Audit trail", "casey@demo.quorum"),
    Case("Admin", "pages/8_Admin.py", "Admin", "ada@demo.quorum"),
    Case("Profile", "pages/9_Profile.py", BASELINE, "riley@demo.quorum"),
)


def user_ids(url: str) -> dict[str, int]:
    from core.db import Database
    from core.services import users

    db = Database(url)
    try:
        return {u.email: int(u.id or 0) for u, _ in users.demo_users(db)}
    finally:
        db.dispose()


def cookie_for(user_id: int) -> str:
    from core.config import Settings
    from core.services import demo_session

    return demo_session.issue(Settings(auth="demo", cookie_secret=COOKIE_SECRET), user_id)


async def browser_case(browser: Browser, url: str, case: Case, user_id: int) -> tuple[float, float]:
    """(first visit, warm rerun) seconds for one case in a fresh session."""
    from core.services import demo_session

    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        await context.add_cookies(
            [{"name": demo_session.COOKIE, "value": cookie_for(user_id), "url": url}]
        )
        page = await context.new_page()
        start = "Models" if case.link == "Home" else ""  # Home's link is clicked from Models
        await page.goto(f"{url}/{start}")
        await (
            page.get_by_test_id("stSidebar")
            .get_by_role("link", name=case.link)
            .wait_for(timeout=TIMEOUT_MS)
        )
        await settle(page)
        link = page.get_by_test_id("stSidebar").get_by_role("link", name=case.link)
        if case.model is None:
            first = await timed_click(page, link)
            await settle(page)
            warm = await timed_click(page, link)
        else:
            await timed_click(page, link)
            await settle(page)
            first = await _open_model(page, case.model)
            await settle(page)
            warm = await timed_click(page, link)  # keeps ?model=: a rerun of the model view
        await settle(page)
        return first, warm
    finally:
        await context.close()


async def _open_model(page, model: str) -> float:  # type: ignore[no-untyped-def]
    await page.get_by_role("combobox", name="Open a model", exact=True).click()
    option = page.get_by_role("option", name=model, exact=True)
    await option.wait_for(timeout=TIMEOUT_MS)
    return await timed_click(page, option)


async def browser_round(url: str, ids: dict[str, int], cases: list[Case]) -> dict[str, tuple]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return {c.name: await browser_case(browser, url, c, ids[c.who]) for c in cases}
        finally:
            await browser.close()


def apptest_case(case: Case, user_id: int) -> tuple[float, float]:
    """Server time of a fresh AppTest's first run and of a rerun, for the same page."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["quorum_user_id"] = user_id
    if case.path != "app.py":
        at.switch_page(case.path)
    if case.model:
        at.query_params["model"] = case.model
    started = time.perf_counter()
    at.run()
    first = time.perf_counter() - started
    if at.exception:
        raise SystemExit(f"{case.name} failed in AppTest: {at.exception[0].message[:200]}")
    started = time.perf_counter()
    at.run()
    return first, time.perf_counter() - started


def seed(work: Path) -> tuple[Path, Path]:
    db, artifacts = work / "seed.db", work / "artifacts"
    env = {
        **os.environ,
        "QUORUM_DATABASE_URL": f"sqlite:///{db}",
        "QUORUM_ARTIFACT_STORE": str(artifacts),
        "OMP_NUM_THREADS": "1",
    }
    for args in (["db", "upgrade"], ["demo", "seed"]):
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "core.entry", "admin", *args],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return db, artifacts


def stats(values: list[float]) -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f}"


def _timed(values: Iterable[float | None]) -> list[float]:
    """The clicks that were timed; a click that started no run is counted in LOST instead
    (a page whose every click was lost reads as infinitely slow, never as fast)."""
    timed = [v for v in values if v is not None]
    return timed or [float("inf")]


def report(
    browser: dict[str, list[tuple[float, float]]], server: dict[str, list[tuple[float, float]]]
) -> None:
    base_first = statistics.median(_timed(x[0] for x in browser["Profile"]))
    base_warm = statistics.median(_timed(x[1] for x in browser["Profile"]))
    print(
        "| page | first visit min / med (s) | vs baseline | warm rerun min / med (s) "
        "| vs baseline | AppTest first / rerun med (s) | bars (1.5 s / 0.5 s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for case in CASES:
        first = _timed(x[0] for x in browser[case.name])
        warm = _timed(x[1] for x in browser[case.name])
        at_first = statistics.median(x[0] for x in server[case.name])
        at_warm = statistics.median(x[1] for x in server[case.name])
        mf, mw = statistics.median(first), statistics.median(warm)
        verdict = []
        verdict.append("met" if mf <= FIRST_BAR else f"first +{mf - FIRST_BAR:.2f} s")
        verdict.append("met" if mw <= WARM_BAR else f"warm +{mw - WARM_BAR:.2f} s")
        name = f"{case.name} (baseline)" if case.link == BASELINE else case.name
        print(
            f"| {name} | {stats(first)} | {mf / base_first:.2f}x | {stats(warm)} "
            f"| {mw / base_warm:.2f}x | {at_first:.3f} / {at_warm:.3f} | {', '.join(verdict)} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, help="a seeded demo SQLite file (copied)")
    parser.add_argument("--artifact-store", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="case names to measure (default: all)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="quorum-p7-"))
    if args.store is None:
        print("seeding the demo store ...", flush=True)
        source, artifacts = seed(work)
    else:
        source, artifacts = args.store, args.artifact_store
    db = work / "quorum.db"
    shutil.copyfile(source, db)
    url_db = f"sqlite:///{db}"
    os.environ.update(
        {
            "QUORUM_COOKIE_SECRET": COOKIE_SECRET,
            "QUORUM_DATABASE_URL": url_db,
            "QUORUM_ARTIFACT_STORE": str(artifacts),
            "QUORUM_AUTH": "demo",
            "QUORUM_SCHEDULER": os.environ.get("QUORUM_SCHEDULER", "false"),
        }
    )
    global CASES
    if args.only:
        CASES = tuple(c for c in CASES if c.name in args.only or c.name == "Profile")
    ids = user_ids(url_db)
    log = work / "streamlit.log"
    port = free_port()
    server = start_server(db, artifacts, log, port)
    url = f"http://127.0.0.1:{port}"
    browser: dict[str, list[tuple[float, float]]] = defaultdict(list)
    apptest: dict[str, list[tuple[float, float]]] = defaultdict(list)
    try:
        asyncio.run(browser_round(url, ids, list(CASES)))  # imports and first-use, not counted
        for case in CASES:
            apptest_case(case, ids[case.who])
        for rep in range(args.repeat):
            for name, times in asyncio.run(browser_round(url, ids, list(CASES))).items():
                browser[name].append(times)
            for case in CASES:
                apptest[case.name].append(apptest_case(case, ids[case.who]))
            print(f"repetition {rep + 1} of {args.repeat} done", flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    report(browser, apptest)
    print(f"clicks that started no run (not timed, not in the figures): {LOST['count']}")
    print(f"server log: {log}")


if __name__ == "__main__":
    main()
