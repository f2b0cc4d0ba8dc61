"""Write the README's screenshots: each main page at desktop width and Home on a phone.

Seeds the demo into a temporary store (or copies --store), starts `streamlit run app.py` on a
free loopback port, signs in through the demo session cookie as the person each page is for,
waits until the page is idle and its charts are drawn, and saves PNGs into docs/screenshots.

    .venv/bin/python scripts/screenshots.py
    .venv/bin/python scripts/screenshots.py --store /tmp/seed/quorum.db --artifact-store /tmp/seed/artifacts
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.chdir(ROOT)

from load_p6 import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, free_port, settle, start_server  # noqa: E402
from pages_p7 import COOKIE_SECRET, cookie_for, seed, user_ids  # noqa: E402
from playwright.async_api import Browser, async_playwright  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1400, "height": 1000}
PHONE = {"width": 390, "height": 844}
# (file, path and query, who, what must be on the page before the picture is taken)
SHOTS = (
    ("home.png", "", "riley@demo.quorum", "Portfolio"),
    ("models.png", "Models", "riley@demo.quorum", "Open a model"),
    (
        "model-evaluation.png",
        "Models?model=credit-default-scorer&version=3&tab=evaluation",
        "riley@demo.quorum",
        "credit-default-scorer",
    ),
    ("review.png", "Reviews?model=credit-default-scorer&version=3", "riley@demo.quorum", "v3"),
    ("deployments.png", "Deployments?model=bike-demand-forecaster", "riley@demo.quorum", "Model"),
    ("monitoring.png", "Monitoring?model=bike-demand-forecaster", "riley@demo.quorum", "Model"),
    ("compliance.png", "Compliance?model=credit-default-scorer", "casey@demo.quorum", "Model"),
    ("register.png", "Register", "dana@demo.quorum", "Model"),
    ("audit.png", "Audit", "casey@demo.quorum", "Audit trail"),
    ("admin.png", "Admin", "ada@demo.quorum", "Admin"),
)
PHONE_SHOT = ("home-phone.png", "", "blake@demo.quorum", "Portfolio")


async def shoot(browser: Browser, url: str, cookie: str, shot: tuple, viewport: dict) -> Path:
    name, path, _, wait_text = shot
    context = await browser.new_context(viewport=viewport, device_scale_factor=1)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        await context.add_cookies([{"name": "quorum_demo_session", "value": cookie, "url": url}])
        page = await context.new_page()
        await page.goto(f"{url}/{path}")
        await page.get_by_text(wait_text).first.wait_for(timeout=TIMEOUT_MS)
        await settle(page)
        if await page.locator(".js-plotly-plot").count():
            await page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=TIMEOUT_MS)
        await page.wait_for_timeout(500)  # plotly's transitions end before the picture
        target = OUT / name
        await page.screenshot(path=str(target), timeout=TIMEOUT_MS)  # the window, as seen
        return target
    finally:
        await context.close()


async def run(url: str, ids: dict[str, int]) -> list[Path]:
    written = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for shot in SHOTS:
                written.append(await shoot(browser, url, cookie_for(ids[shot[2]]), shot, DESKTOP))
            phone = PHONE_SHOT
            written.append(await shoot(browser, url, cookie_for(ids[phone[2]]), phone, PHONE))
        finally:
            await browser.close()
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, help="a seeded demo SQLite file (copied)")
    parser.add_argument("--artifact-store", type=Path)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="quorum-shots-"))
    source, artifacts = seed(work) if args.store is None else (args.store, args.artifact_store)
    db = work / "quorum.db"
    shutil.copyfile(source, db)
    os.environ.update({"QUORUM_COOKIE_SECRET": COOKIE_SECRET, "QUORUM_SCHEDULER": "false"})
    ids = user_ids(f"sqlite:///{db}")
    OUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_server(db, artifacts, work / "streamlit.log", port)
    try:
        for path in asyncio.run(run(f"http://127.0.0.1:{port}", ids)):
            print(path.relative_to(ROOT))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
