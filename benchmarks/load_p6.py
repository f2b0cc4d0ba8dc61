"""P6: a reviewer's click-to-idle time, 10 browser sessions through HAProxy in front of one app
process and in front of two, against one session alone.

`--replicas` (2) `streamlit run app.py` processes on one copy of a seeded demo store, and two
HAProxy instances configured as `make cluster` configures one (scripts/haproxy.cfg.template):
one in front of the first process only, one in front of all of them. One headless Chromium,
one browser context per session. Each session signs in as a demo reviewer and repeats a
reviewer's clicks: switch page through the sidebar, open a model, open a version, open the
Evaluation tab, post a comment. A click's time runs from the click (the page's own clock, at
pointerdown) until the app is idle again after the rerun it started (see WATCH); for the tab,
which does not rerun the script, until its first chart is drawn. Per repetition: one session
alone through the one-process balancer, then 10 sessions through each balancer. Bar: p95 with
two processes <= 0.6x p95 with one, in the same run.

    .venv/bin/python benchmarks/load_p6.py --store /tmp/p5/small.db \
        --artifact-store /tmp/p5/artifacts --rounds 1 --repeat 3
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
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
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
BUSY = '[data-testid="stSkeleton"], [data-testid="stSkeletonElement"], [data-stale="true"]'
TIMEOUT_MS = 120_000
START_S = 300  # a busy machine can take minutes to start a process
OBSERVE_MS = 30_000
REVIEWERS = ("Riley Reviewer", "Morgan Validator")
MODEL = "credit-default-scorer"

# The page's own record of one click: `click` at pointerdown; `started` counts script runs begun
# since; `idleSince` is when the app last became idle (not running, nothing stale from the
# previous page, no skeleton) and `changedAt` the last script-state change; the observer
# watches the whole document. A click is done once a run it started is over and the app has
# stayed idle for QUIET_MS; its time is click -> idleSince.
#
# The first version of this script had a defect on page switches: it took a click as done at
# the first `running` -> `notRunning` change and then waited 200 ms and for `notRunning`
# before the next click. After a page switch the old page's elements stay on screen, stale,
# and the new page's skeletons load for 0.5-0.7 s more after that change (measured alone), so
# (1) a page switch was timed short, and (2) under load the next click could land on an
# element being replaced and be swallowed (the likely cause); the script then waited 30 s for
# a run that never came and recorded those 30 s as the click's time (27 of 240 clicks). Now a click waits
# until the page is really idle, and a click that starts no run is counted, not timed.
QUIET_MS = 200
WATCH = """([idle, busy]) => {
  const w = {click: null, started: 0, changedAt: performance.now(), idleSince: null};
  window.__p6 = w;
  document.addEventListener('pointerdown', () => { if (w.click === null) w.click = performance.now(); },
                            {capture: true, once: true});
  const running = new Set(['running', 'rerunRequested', 'stopRequested']);
  let last = null;
  const step = (value) => {
    if (value === null || value === last) return;
    if (running.has(value) && !running.has(last)) w.started += 1;
    last = value;
    w.changedAt = performance.now();
  };
  const root = document.querySelector('[data-testid="stApp"]');
  if (root) last = root.getAttribute('data-test-script-state');
  new MutationObserver((records) => {
    let app = null;
    for (const record of records) {
      if (record.target.getAttribute('data-testid') !== 'stApp') continue;
      app = record.target;
      step(record.oldValue);
    }
    if (app) step(app.getAttribute('data-test-script-state'));
  }).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                        attributeFilter: ['data-test-script-state']});
  const timer = setInterval(() => {
    const quiet = document.querySelector(idle) !== null && document.querySelector(busy) === null;
    if (!quiet) { w.idleSince = null; return; }
    if (w.idleSince === null || w.idleSince < w.changedAt) w.idleSince = Math.max(performance.now(), w.changedAt);
    if (w.click !== null && w.started > 0) w.done = w.idleSince;
  }, 10);
  w.stop = () => clearInterval(timer);
}"""
DONE = """(quiet) => {
  const w = window.__p6;
  if (!w || w.click === null || w.started === 0 || w.idleSince === null) return false;
  const now = performance.now();
  if (now - w.idleSince < quiet || now - w.changedAt < quiet) return false;
  w.final = w.idleSince;  // kept: a later skeleton may clear idleSince before it is read
  return true;
}"""
CHART_WATCH = """() => {
  const w = {click: null, done: null};
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

    def add(self, action: str, seconds: float | None) -> None:
        if seconds is not None:
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
    deadline = time.monotonic() + START_S
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
    raise SystemExit(f"streamlit was not healthy in {START_S} s; see {log}")


async def settle(page: Page) -> None:
    """Wait until the app is idle: nothing running, stale or loading for QUIET_MS."""
    await page.wait_for_function(
        """([idle, busy, quiet]) => {
            const w = (window.__settle = window.__settle || {since: null});
            const now = performance.now();
            if (document.querySelector(idle) === null || document.querySelector(busy) !== null) {
                w.since = null;
                return false;
            }
            if (w.since === null) w.since = now;
            return now - w.since >= quiet;
        }""",
        arg=[IDLE, BUSY, QUIET_MS],
        polling=20,
        timeout=TIMEOUT_MS,
    )
    await page.evaluate("() => { window.__settle = null; }")


LOST = {"count": 0}


async def timed_click(page: Page, target: Any, *, chart: bool = False) -> float | None:
    """Seconds from the click to the end of the rerun(s) it started (or to the drawn chart);
    None when the click started no run within OBSERVE_MS (counted in LOST, not timed)."""
    await settle(page)
    if chart:
        await page.evaluate(CHART_WATCH)
        done = "() => window.__p6 && window.__p6.done !== null"
    else:
        await page.evaluate(WATCH, [IDLE, BUSY])
        done = DONE
    await target.click()
    try:
        await page.wait_for_function(
            done, arg=None if chart else QUIET_MS, timeout=OBSERVE_MS, polling=20
        )
    except PlaywrightTimeout:
        LOST["count"] += 1
        await settle(page)
        return None
    watch = await page.evaluate(
        "() => { const w = window.__p6; if (w.stop) w.stop(); return {click: w.click, done: w.final ?? w.done}; }"
    )
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
    for c in contexts:
        c.set_default_timeout(TIMEOUT_MS)  # a busy machine is slow, not broken
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
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


ALONE = "alone"


def layouts(replicas: int) -> list[str]:
    return ["1 replica", f"{replicas} replicas"]


async def measure(
    urls: dict[str, str], sessions: int, rounds: int, repeat: int
) -> dict[str, list[Samples]]:
    """Per repetition: one session alone through the one-replica balancer, then `sessions` at
    once through each balancer (their order alternating between repetitions)."""
    names = list(urls)
    results: dict[str, list[Samples]] = {ALONE: [], **{name: [] for name in names}}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for url in urls.values():  # warms imports and caches in every process
                await run_sessions(browser, url, 2, 1, Samples())
            for rep in range(repeat):
                alone = Samples()
                await run_sessions(browser, urls[names[0]], 1, rounds, alone)
                results[ALONE].append(alone)
                line = [f"alone p95 {pct(alone.all(), 0.95):.3f} s"]
                for name in names if rep % 2 == 0 else names[::-1]:
                    together = Samples()
                    await run_sessions(browser, urls[name], sessions, rounds, together)
                    results[name].append(together)
                    line.append(
                        f"{sessions} sessions on {name} p95 {pct(together.all(), 0.95):.3f} s"
                    )
                print(f"repetition {rep + 1} of {repeat}: " + ", ".join(line), flush=True)
        finally:
            await browser.close()
    return results


def report(results: dict[str, list[Samples]], sessions: int) -> None:
    one, many = [k for k in results if k != ALONE]
    print(
        f"| repetition | alone p50 / p95 (s) | {sessions} sessions, {one}: p50 / p95 (s) "
        f"| {sessions} sessions, {many}: p50 / p95 (s) | p95 {many} / {one} "
        f"| p95 {one} / alone | p95 {many} / alone |"
    )
    print("|---|---|---|---|---|---|---|")
    ratios: dict[str, list[float]] = defaultdict(list)
    for i in range(len(results[ALONE])):
        a, o, m = (results[k][i].all() for k in (ALONE, one, many))
        pa, po, pm = pct(a, 0.95), pct(o, 0.95), pct(m, 0.95)
        ratios["many/one"].append(pm / po)
        ratios["one/alone"].append(po / pa)
        ratios["many/alone"].append(pm / pa)
        print(
            f"| {i + 1} | {pct(a, 0.5):.3f} / {pa:.3f} | {pct(o, 0.5):.3f} / {po:.3f} "
            f"| {pct(m, 0.5):.3f} / {pm:.3f} | {pm / po:.2f}x | {po / pa:.2f}x | {pm / pa:.2f}x |"
        )
    for key, label in (
        ("many/one", f"p95 {many} / {one} (bar <= 0.6x)"),
        ("one/alone", f"p95 {one} / alone"),
        ("many/alone", f"p95 {many} / alone"),
    ):
        values = ratios[key]
        print(f"{label}: min {min(values):.2f}x, median {statistics.median(values):.2f}x")
    print(
        f"\n| action (all repetitions) | alone p95 (s) | {one} p95 (s) | {many} p95 (s) "
        f"| {many} / {one} | samples alone / {one} / {many} |"
    )
    print("|---|---|---|---|---|---|")
    for action in results[ALONE][0].by_action:
        a, o, m = ([x for r in results[k] for x in r.by_action[action]] for k in (ALONE, one, many))
        print(
            f"| {action} | {pct(a, 0.95):.3f} | {pct(o, 0.95):.3f} | {pct(m, 0.95):.3f} "
            f"| {pct(m, 0.95) / pct(o, 0.95):.2f}x | {len(a)} / {len(o)} / {len(m)} |"
        )


def start_haproxy(
    work: Path, name: str, port: int, replica_ports: list[int]
) -> subprocess.Popen[bytes]:
    """HAProxy from scripts/haproxy.cfg.template (as `make cluster` writes it) on `port`."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from haproxy_config import render

    config = work / f"haproxy-{name}.cfg"
    config.write_text(render("127.0.0.1", port, [f"127.0.0.1:{p}" for p in replica_ports]))
    log = work / f"haproxy-{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603
            [HAPROXY, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:  # noqa: S310
                if r.status == 200:
                    return process
        except OSError:
            pass
        time.sleep(0.25)
    process.terminate()
    raise SystemExit(f"HAProxy did not answer in 30 s; see {log}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--store", type=Path, required=True, help="a seeded demo SQLite file (copied)"
    )
    parser.add_argument("--artifact-store", type=Path, required=True)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=2, help="app processes behind HAProxy")
    parser.add_argument("--rounds", type=int, default=2, help="reviewer rounds per session")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="quorum-p6-"))
    db = work / "quorum.db"
    shutil.copyfile(args.store, db)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        ports = [free_port() for _ in range(args.replicas)]
        for port in ports:
            processes.append(
                start_server(db, args.artifact_store, work / f"streamlit-{port}.log", port)
            )
        one, many = layouts(args.replicas)
        urls = {}
        for name, behind in ((one, ports[:1]), (many, ports)):
            port = free_port()
            processes.append(start_haproxy(work, name.replace(" ", "-"), port, behind))
            urls[name] = f"http://127.0.0.1:{port}/"
        results = asyncio.run(measure(urls, args.sessions, args.rounds, args.repeat))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    report(results, args.sessions)
    print(
        f"clicks that started no run within {OBSERVE_MS / 1000:.0f} s (not timed): {LOST['count']}"
    )
    print(f"logs: {work}")


if __name__ == "__main__":
    main()
