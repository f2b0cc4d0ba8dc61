"""Browser fixtures: a seeded demo store, a `streamlit run` server per test module, Chromium.

Each test module starts one server on its own copy of the store (copies are cheap; seeding
is not, so the seeded store is built once per session). Pages are found by role and label.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.fixtures.quorum_server import free_port, log_tail, start_app, stop_process, wait_healthy

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page

    from core.db import Database

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER_ENV = "QUORUM_REQUIRE_BROWSER"
SCREENSHOTS = Path(__file__).parent / "screenshots"
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
SKELETON = '[data-testid="stSkeleton"], [data-testid="stSkeletonElement"]'
STALE = '[data-stale="true"]'
# How long an expectation or a script run may take. Generous on purpose: on a machine whose
# cores are all busy (make test-loaded) one run of a page can take tens of seconds, and a
# slow run is not a failure. Tests that pass never wait this long.
E2E_AUDIT_KEY = "browser-tests-audit-key-" + "9" * 32
TIMEOUT_MS = 120_000
# A click that started no script run within this time did not reach the app: click again.
CLICK_PATIENCE_MS = 20_000
CLICK_ATTEMPTS = 3
# How long the script state must have stayed put before the app counts as idle. It bridges
# the gap between the two runs of st.rerun(), where the browser shows "notRunning" briefly.
QUIET_MS = 200
POLL_MS = 50
# Counts the script runs the browser sees, from the script-state attribute of the app root:
# `started` goes up when the app leaves the idle state, `changedAt` is the last change.
RUN_WATCH = """
(() => {
  const runs = (window.__quorumRuns = { started: 0, finished: 0, changedAt: performance.now() });
  const busy = new Set(["running", "rerunRequested", "stopRequested"]);
  let last = "initial";
  const step = (value) => {
    if (value === null || value === last) return;
    if (busy.has(value) && !busy.has(last)) runs.started += 1;
    if (!busy.has(value) && busy.has(last)) runs.finished += 1;
    last = value;
    runs.changedAt = performance.now();
  };
  new MutationObserver((records) => {
    let app = null;
    for (const record of records) {
      if (record.target.getAttribute("data-testid") !== "stApp") continue;
      app = record.target;
      step(record.oldValue);
    }
    if (app) step(app.getAttribute("data-test-script-state"));
  }).observe(document, {
    subtree: true,
    attributes: true,
    attributeOldValue: true,
    attributeFilter: ["data-test-script-state"],
  });
})();
"""

DEMO_NAMES = {
    "dana": "Dana Scientist",
    "sam": "Sam Scientist",
    "riley": "Riley Reviewer",
    "morgan": "Morgan Validator",
    "casey": "Casey Compliance",
    "blake": "Blake Business",
    "ada": "Ada Admin",
}


# --- stores ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """A SQLite store and its artifact directory, owned by one test module."""

    directory: Path

    @property
    def db_path(self) -> Path:
        return self.directory / "quorum.db"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db_path}"

    @property
    def artifacts(self) -> Path:
        return self.directory / "artifacts"

    def env(self) -> dict[str, str]:
        return {
            "QUORUM_DATABASE_URL": self.url,
            "QUORUM_ARTIFACT_STORE": str(self.artifacts),
            # one key for the seeded store, its copies and this test process's own service
            # calls, so every trail still verifies
            "QUORUM_AUDIT_KEY": E2E_AUDIT_KEY,
        }

    def database(self) -> Database:
        from core.db import Database

        return Database(self.url)


def _quorum(args: list[str], store: Store, log: Path) -> None:
    env = {**os.environ, **store.env(), "OMP_NUM_THREADS": "1"}
    with log.open("a") as out:
        done = subprocess.run(
            [sys.executable, "-m", "core.entry", "admin", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=300,
        )
    if done.returncode != 0:
        raise RuntimeError(f"quorum admin {' '.join(args)} failed:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session", autouse=True)
def _e2e_audit_key() -> Iterator[None]:
    """The browser tests' own service calls sign their audit events with the servers' key."""
    from core import config

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QUORUM_AUDIT_KEY", E2E_AUDIT_KEY)
        config.reset_settings()
        yield
    config.reset_settings()


@pytest.fixture(scope="session")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The demo portfolio (people, three models, reviews, deployments), built once.

    QUORUM_E2E_SEEDED_DIR=DIR reuses (or first fills) a seeded store in DIR across runs.
    """
    reuse = os.environ.get("QUORUM_E2E_SEEDED_DIR")
    if reuse and Store(Path(reuse)).db_path.exists():
        return Store(Path(reuse))
    store = Store(Path(reuse) if reuse else tmp_path_factory.mktemp("seeded"))
    store.directory.mkdir(parents=True, exist_ok=True)
    log = store.directory / "seed.log"
    _quorum(["db", "upgrade"], store, log)
    _quorum(["demo", "seed"], store, log)
    return store


def copy_store(source: Store, destination: Path) -> Store:
    destination.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{source.db_path}{suffix}")
        if path.exists():
            shutil.copy2(path, f"{destination / 'quorum.db'}{suffix}")
    if source.artifacts.exists():
        shutil.copytree(source.artifacts, destination / "artifacts")
    return Store(destination)


@pytest.fixture(scope="module")
def module_store(seeded_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A private copy of the seeded store for one test module (tests there may change it)."""
    return copy_store(seeded_store, tmp_path_factory.mktemp("store"))


# --- the app server --------------------------------------------------------------------------


@dataclass
class AppServer:
    """`streamlit run app.py` on a free port; output goes to `log`."""

    store: Store
    log: Path
    auth: str = "demo"
    extra_env: dict[str, str] = field(default_factory=dict)
    secrets_file: Path | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def page_url(self, name: str = "") -> str:
        return f"{self.url}/{name}"

    def start(self, timeout: float = 120.0) -> AppServer:
        extra = () if self.secrets_file is None else (f"--secrets.files={self.secrets_file}",)
        env = {
            **os.environ,
            **self.store.env(),
            "QUORUM_AUTH": self.auth,
            "OMP_NUM_THREADS": "1",
            **self.extra_env,
        }
        self.process = start_app(self.port, env, self.log, extra)
        try:
            wait_healthy(f"{self.url}/_stcore/health", self.process, self.log, timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    def log_tail(self, chars: int = 3000) -> str:
        return log_tail(self.log, chars)

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture(scope="module")
def demo_app(module_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """Quorum with demo sign-in on this module's store copy."""
    log = tmp_path_factory.mktemp("logs") / "streamlit.log"
    server = AppServer(store=module_store, log=log).start()
    yield server
    server.stop()


# --- the browser -----------------------------------------------------------------------------


def _browser_missing(reason: str) -> None:
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_BROWSER_ENV}=1 requires the browser tests to run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless; expectations wait up to TIMEOUT_MS."""
    if not CHROMIUM.exists():
        _browser_missing(f"{CHROMIUM} is missing: install Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_missing("playwright for Python is not installed")
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (no cookies, its own Streamlit session)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.add_init_script(RUN_WATCH)
    yield ctx
    ctx.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(context: BrowserContext, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page; when the test fails, its last state is saved as screenshots/FAILED-<test>.png."""
    browser_page = context.new_page()
    yield browser_page
    if request.node.stash.get(_FAILED, False):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser_page.screenshot(path=str(SCREENSHOTS / f"FAILED-{request.node.name}.png"))


# --- page helpers ----------------------------------------------------------------------------
#
# Every action waits until the app is idle, then acts. An action that reruns the script
# (a button, an option, a tab, a page link) counts as received once the browser shows a new
# run; the helper then waits for that run to end. A click that starts no run was swallowed
# (the target was disabled or redrawn under the pointer while a rerun was drawing) and is
# made again. A click that did start a run is never repeated, so a wrong result after it
# fails the test instead of being retried away.


def run_count(page: Page) -> int:
    """How many script runs this document has seen start."""
    return int(page.evaluate("() => window.__quorumRuns ? window.__quorumRuns.started : 0"))


def wait_idle(page: Page, since: int | None = None, timeout: float = TIMEOUT_MS) -> None:
    """Wait until the app is idle: no script run going for QUIET_MS, no element left stale
    from the previous run and no lazily loaded widget still showing its skeleton.

    With `since` (a run_count taken before an action), first wait for a run that started
    after it, so a run the action requested but the browser has not begun is not missed."""
    page.wait_for_function(
        """([since, idle, busy, quiet]) => {
            const runs = window.__quorumRuns;
            if (!runs || (since !== null && runs.started <= since)) return false;
            if (document.querySelector(idle) === null || document.querySelector(busy) !== null)
                return false;
            return performance.now() - runs.changedAt >= quiet;
        }""",
        arg=[since, IDLE, f"{SKELETON}, {STALE}", QUIET_MS],
        polling=POLL_MS,
        timeout=timeout,
    )


def _started_or(page: Page, before: int, done: Callable[[], bool] | None) -> str | None:
    """After a click: "run" once a run started after `before`, "done" once `done()` holds
    without one, None when neither happened within CLICK_PATIENCE_MS."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = time.monotonic() + CLICK_PATIENCE_MS / 1000
    while True:
        try:
            page.wait_for_function(
                "before => (window.__quorumRuns ? window.__quorumRuns.started : 0) > before",
                arg=before,
                polling=POLL_MS,
                timeout=CLICK_PATIENCE_MS if done is None else 4 * POLL_MS,
            )
            return "run"
        except PlaywrightTimeout:
            pass
        if done is not None and done():
            return "done"
        if time.monotonic() >= deadline:
            return None


def click_until(page: Page, target: Locator, done: Callable[[], bool] | None = None) -> str:
    """Click `target` when the app is idle, and again if the click had no effect.

    The click counts when it starts a script run (then this waits for the run to end) or,
    for a click that reruns nothing such as opening a list, when `done()` holds. Returns
    "run" or "done"; raises after CLICK_ATTEMPTS clicks without either."""
    for _ in range(CLICK_ATTEMPTS):
        wait_idle(page)
        before = run_count(page)
        target.click()
        effect = _started_or(page, before, done)
        if effect == "run":
            wait_idle(page, since=before)
        if effect is not None:
            return effect
    raise AssertionError(f"{CLICK_ATTEMPTS} clicks on {target} started no run")


def open_app(page: Page, app: AppServer, path: str = "") -> None:
    """Load a page in a new Streamlit session and wait until its first run is done."""
    page.goto(app.page_url(path))
    wait_idle(page, since=0)
    page.get_by_role("heading", level=1).first.wait_for()


def sign_in_demo(page: Page, who: str) -> None:
    """On the demo sign-in screen, press Sign in in the row of `who` (a key of DEMO_NAMES)."""
    name = DEMO_NAMES[who]
    row = page.get_by_test_id("stHorizontalBlock").filter(has_text=name)
    click_until(page, row.get_by_role("button", name="Sign in"))
    page.get_by_test_id("stSidebar").get_by_text(name).wait_for()
    wait_idle(page)


def as_demo_user(page: Page, app: AppServer, who: str, path: str = "") -> None:
    """Open the app signed out (no demo-session cookie from an earlier test) and sign in."""
    page.context.clear_cookies()
    open_app(page, app, path)
    sign_in_demo(page, who)


def sign_out(page: Page) -> None:
    """Sign out; done once the sign-in screen shows (signing out can reload the document, and
    a new document's run counter starts again from zero)."""
    signed_out = page.get_by_role("heading", name=re.compile("^Sign in"))
    click_until(
        page,
        page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out"),
        done=lambda: signed_out.count() > 0,
    )


def go_to(page: Page, label: str) -> None:
    """Follow the sidebar link `label`, keeping the session."""
    click_until(page, page.get_by_test_id("stSidebar").get_by_role("link", name=label))
    page.get_by_role("heading", level=1, name=label).wait_for()
    wait_idle(page)


def _shows(value: str, option: str) -> bool:
    """Whether a selectbox showing `value` has `option` chosen ("v4 — Approved" shows "v4")."""
    return value == option or value.startswith(f"{option} ")


def choose(page: Page, label: str, option: str, scope: Page | Locator | None = None) -> None:
    """Pick `option` in the selectbox labelled `label` (inside `scope` when two share it)."""
    from playwright.sync_api import expect

    box = (scope or page).get_by_role("combobox", name=label, exact=True)
    wait_idle(page)
    if _shows(box.input_value(), option):
        return
    target = page.get_by_role("option", name=option).first
    for _ in range(CLICK_ATTEMPTS):
        if not target.is_visible():
            try:
                click_until(page, box, done=target.is_visible)
            except AssertionError:
                raise AssertionError(
                    f"the selectbox {label!r} offered no option {option!r}"
                ) from None
        before = run_count(page)
        target.click()
        effect = _started_or(page, before, lambda: _shows(box.input_value(), option))
        if effect == "run":
            wait_idle(page, since=before)
            expect(box).to_have_value(re.compile(f"^{re.escape(option)}( |$)"))
            return
        if effect == "done":  # a selectbox in a form reruns nothing until the form is sent
            return
        if target.is_visible():
            page.keyboard.press("Escape")
    raise AssertionError(f"choosing {option!r} in {label!r} had no effect")


def fill(page: Page, label: str, text: str) -> None:
    """Type into the visible text input or text area labelled `label`."""
    wait_idle(page)
    page.get_by_role("textbox", name=label, exact=True).fill(text)


def upload(page: Page, label: str, path: Path) -> None:
    """Put `path` in the file uploader whose label starts with `label`; wait until it is in."""
    from playwright.sync_api import expect

    wait_idle(page)
    region = page.get_by_role("region", name=label)
    region.locator("input[type=file]").set_input_files(path)
    expect(region.get_by_role("button", name=f"Remove {path.name}")).to_be_visible()


def open_tab(page: Page, name: str) -> None:
    """Select the tab `name` (tabs rerun the page) and wait until that run is over."""
    from playwright.sync_api import expect

    tab = page.get_by_role("tab", name=name, exact=True)
    wait_idle(page)
    if tab.get_attribute("aria-selected") != "true":
        # a rerun fast enough to finish within one browser frame never shows as running: the
        # tab being selected then says the click was received
        click_until(page, tab, done=lambda: tab.get_attribute("aria-selected") == "true")
    expect(tab).to_have_attribute("aria-selected", "true")


def click_button(page: Page, name: str) -> None:
    click_until(page, page.get_by_role("button", name=name, exact=True))


def expect_text(page: Page, text: str) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_text(text).first).to_be_visible()


def screenshot(page: Page, name: str, top: Locator | None = None) -> Path:
    """Save screenshots/<name>.png; with `top`, scroll so that element starts the view."""
    wait_idle(page)
    if top is not None:
        top.first.evaluate(
            "element => element.scrollIntoView({block: 'start', behavior: 'instant'})"
        )
    # Two animation frames: the scrolled and re-laid-out page has been painted.
    page.evaluate(
        "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_accessible_basics(page: Page) -> None:
    """One h1 per page; every visible text input, text area and select has a label."""
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll(
                'input:not([type=hidden]):not([type=file]):not([tabindex="-1"]), textarea, [role=combobox]')]
            .filter(el => el.offsetParent !== null)
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                          && !el.getAttribute('aria-labelledby'))
            .map(el => el.outerHTML.slice(0, 120))"""
    )
    assert unlabeled == [], f"inputs without a label: {unlabeled}"
