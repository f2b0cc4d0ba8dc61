"""P6: a reviewer's click-to-idle time with 10 browser sessions at once vs one session alone.

One `streamlit run app.py` on a copy of a seeded demo store (loopback only), one headless
Chromium, one browser context per session. Each session signs in as a demo reviewer and
repeats a reviewer's clicks: switch page through the sidebar, open a model, open a version,
open the Evaluation tab, post a comment. A click's time runs from the click (the page's own
clock, at pointerdown) until the app reports `notRunning` again after the rerun it started;
for the tab, which does not rerun the script, until its first chart is drawn. The single
session and the concurrent sessions run in the same process, against the same server,
alternately, `--repeat` times. Bar: p95 with 10 sessions <= 2x p95 alone.

    .venv/bin/python benchmarks/load_p6.py --store /tmp/p5/small.db --artifact-store /tmp/p5/artifacts
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
TIMEOUT_MS = 120_000
OBSERVE_MS = 30_000
REVIEWERS = ("Riley Reviewer", "Morgan Validator")
MODEL = "credit-default-scorer"

WATCH = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const w = {click: null, ran: false, done: null};
  window.__p6 = w;
  document.addEventListener('pointerdown', () => { if (w.click === null) w.click = performance.now(); },
                            {capture: true, once: true});
  new MutationObserver((records) => {
    for (const record of records) {
      if (record.oldValue === 'running') {
        w.ran = true;
        if (w.done === null) w.done = performance.now();
      }
    }
    if (app.getAttribute('data-test-script-state') === 'running') w.ran = true;
  }).observe(app, {attributes: true, attributeOldValue: true,
                   attributeFilter: ['data-test-script-state']});
}"""
CHART_WATCH = """() => {
  const w = {click: null, ran: true, done: null};
  window.__p6 = w;
  document.addEventListener('pointerdown', () => { if (w.click === null) w.click = performance.now(); },
                            {capture: true, once: true});
  const check = () => {
    const panel = document.querySelector('[role="tabpanel"]:not([hidden])');
    if (panel && panel.querySelector('.js-plotly-plot .main-svg')) { w.done = performance.now(); return; }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
}"""


@dataclass
class Samples:
    by_action: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, action: str, seconds: float) -> None:
        self.by_action[action].append(seconds)

    def all(self) -> list[float]:
        return [s for values in self.by_action.values() for s in values]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db: Path, artifacts: Path, log: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "QUORUM_DATABASE_URL": f"sqlite:///{db}",
        "QUORUM_ARTIFACT_STORE": str(artifacts),
        "QUORUM_AUTH": "demo",
        "OMP_NUM_THREADS": "1",
    }
    command = [
        str(BIN / "streamlit"),
        "run",
        "app.py",
        "--server.headless=true",
        f"--server.port={port}",
        "--server.address=127.0.0.1",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
    ]
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"streamlit exited early; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:  # noqa: S310
                if r.status == 200:
                    return process
        except OSError:
            pass
        time.sleep(0.25)
    process.terminate()
    raise SystemExit(f"streamlit was not healthy in 90 s; see {log}")


async def settle(page: Page) -> None:
    await page.wait_for_timeout(200)
    await page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)


FALLBACKS = {"count": 0}


async def timed_click(page: Page, target: Any, *, chart: bool = False) -> float:
    """Seconds from the click to the end of the rerun it started (or to the drawn chart).

    If the page's observer saw no rerun end within OBSERVE_MS (its record was lost), the
    time is taken on this side instead: from before the click until the app is idle.
    """
    await page.evaluate(CHART_WATCH if chart else WATCH)
    started = time.perf_counter()
    await target.click()
    try:
        await page.wait_for_function(
            "() => window.__p6 && window.__p6.done !== null", timeout=OBSERVE_MS, polling=20
        )
    except PlaywrightTimeout:
        await page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)
        FALLBACKS["count"] += 1
        return time.perf_counter() - started
    watch = await page.evaluate("() => window.__p6")
    await settle(page)
    return float(watch["done"] - watch["click"]) / 1000


async def sign_in(page: Page, url: str, who: str) -> None:
    await page.goto(url)
    row = page.get_by_test_id("stHorizontalBlock").filter(has_text=who)
    await row.get_by_role("button", name="Sign in").click()
    await page.get_by_test_id("stSidebar").get_by_text(who).wait_for(timeout=TIMEOUT_MS)
    await settle(page)


async def pick_other(page: Page, label: str, prefer: str | None, salt: int) -> Any:
    """Open the selectbox `label`; return an option that is not the current one."""
    await page.get_by_role("combobox", name=label, exact=True).click()
    options = page.get_by_role("option")
    await options.first.wait_for(timeout=TIMEOUT_MS)
    texts = await options.all_inner_texts()
    selected = [await options.nth(i).get_attribute("aria-selected") for i in range(len(texts))]
    free = [i for i, flag in enumerate(selected) if flag != "true"] or list(range(len(texts)))
    wanted = [i for i in free if prefer and texts[i].strip() == prefer]
    return options.nth(wanted[0] if wanted else free[salt % len(free)])


async def choose(
    page: Page, label: str, prefer: str | None, salt: int, samples: Samples, action: str
) -> None:
    option = await pick_other(page, label, prefer, salt)
    samples.add(action, await timed_click(page, option))


async def reviewer_round(page: Page, session: int, round_no: int, samples: Samples) -> None:
    sidebar = page.get_by_test_id("stSidebar")
    salt = session + round_no
    samples.add("switch page", await timed_click(page, sidebar.get_by_role("link", name="Models")))
    await choose(page, "Open a model", MODEL, salt, samples, "open a model")
    await choose(page, "Version", None, salt, samples, "open a version")
    tab = page.get_by_role("tab", name="Evaluation")
    samples.add("open a chart tab", await timed_click(page, tab, chart=True))
    samples.add("switch page", await timed_click(page, sidebar.get_by_role("link", name="Reviews")))
    await choose(page, "Model", MODEL, salt, samples, "open a model")
    await page.get_by_role("textbox", name="Comment", exact=True).fill(
        f"Load test note {session}.{round_no}: checked the calibration."
    )
    button = page.get_by_role("button", name="Post comment")
    samples.add("post a comment", await timed_click(page, button))
    samples.add("switch page", await timed_click(page, sidebar.get_by_role("link", name="Home")))


async def run_sessions(browser: Browser, url: str, n: int, rounds: int, samples: Samples) -> None:
    contexts = [
        await browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(n)
    ]
    try:
        pages = [await c.new_page() for c in contexts]
        await asyncio.gather(*(sign_in(p, url, REVIEWERS[i % 2]) for i, p in enumerate(pages)))

        async def work(i: int, page: Page) -> None:
            for r in range(rounds):
                await reviewer_round(page, i, r, samples)

        await asyncio.gather(*(work(i, p) for i, p in enumerate(pages)))
    finally:
        for c in contexts:
            await c.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def measure(url: str, sessions: int, rounds: int, repeat: int) -> dict[str, list[Samples]]:
    results: dict[str, list[Samples]] = {"alone": [], "concurrent": []}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            warm = Samples()
            await run_sessions(browser, url, 1, 1, warm)  # warms imports and caches
            for rep in range(repeat):
                alone, together = Samples(), Samples()
                await run_sessions(browser, url, 1, rounds, alone)
                await run_sessions(browser, url, sessions, rounds, together)
                results["alone"].append(alone)
                results["concurrent"].append(together)
                print(
                    f"repetition {rep + 1} of {repeat}: alone p95 {pct(alone.all(), 0.95):.3f} s, "
                    f"{sessions} sessions p95 {pct(together.all(), 0.95):.3f} s",
                    flush=True,
                )
        finally:
            await browser.close()
    return results


def report(results: dict[str, list[Samples]], sessions: int) -> None:
    print(f"| repetition | alone p50 / p95 (s) | {sessions} sessions p50 / p95 (s) | p95 ratio |")
    print("|---|---|---|---|")
    ratios = []
    for i, (alone, together) in enumerate(
        zip(results["alone"], results["concurrent"], strict=True)
    ):
        a, t = alone.all(), together.all()
        ratio = pct(t, 0.95) / pct(a, 0.95)
        ratios.append(ratio)
        print(
            f"| {i + 1} | {pct(a, 0.5):.3f} / {pct(a, 0.95):.3f} | {pct(t, 0.5):.3f} / "
            f"{pct(t, 0.95):.3f} | {ratio:.2f}x |"
        )
    print(f"p95 ratio: min {min(ratios):.2f}x, median {statistics.median(ratios):.2f}x")
    print(
        "\n| action | alone p50 / p95 (s) | concurrent p50 / p95 (s) | samples alone / concurrent |"
    )
    print("|---|---|---|---|")
    actions = results["alone"][0].by_action
    for action in actions:
        a = [s for r in results["alone"] for s in r.by_action[action]]
        t = [s for r in results["concurrent"] for s in r.by_action[action]]
        print(
            f"| {action} | {pct(a, 0.5):.3f} / {pct(a, 0.95):.3f} | {pct(t, 0.5):.3f} / "
            f"{pct(t, 0.95):.3f} | {len(a)} / {len(t)} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--store", type=Path, required=True, help="a seeded demo SQLite file (copied)"
    )
    parser.add_argument("--artifact-store", type=Path, required=True)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="reviewer rounds per session")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="quorum-p6-"))
    db = work / "quorum.db"
    shutil.copyfile(args.store, db)
    log = work / "streamlit.log"
    port = free_port()
    server = start_server(db, args.artifact_store, log, port)
    try:
        results = asyncio.run(
            measure(f"http://127.0.0.1:{port}/", args.sessions, args.rounds, args.repeat)
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    report(results, args.sessions)
    print(f"clicks timed on the driver side (observer saw no rerun end): {FALLBACKS['count']}")
    print(f"server log: {log}")


if __name__ == "__main__":
    main()
