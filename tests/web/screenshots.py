"""The README's screenshots of ``h2ot serve``: a demo leaderboard served and photographed in headless Chromium.

    python tests/web/screenshots.py docs/img      (make screenshots)

Writes ``web_campaigns.png``, ``web_campaign.png``, ``web_trial.png`` and ``web_compare.png`` (palette PNGs, to
keep the repository small). The leaderboard is the web tests' demo campaign plus the smoke grid half done (two
trials complete, two running), so the campaigns page shows live counts and an ETA.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared helpers
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from demo_data import REPO, demo_result, fill_demo
from sqlalchemy import update
from web_browser import chromium, serving

from orchestrator.grid import load_grid
from results.schema import Trial
from results.store import LeaderboardStore, now

WIDTH = 1280


def fill_running(store: LeaderboardStore) -> None:
    """Campaign ``smoke`` (the smoke grid): two trials complete twenty minutes ago, two running since."""
    grid = load_grid(REPO / "search_spaces" / "smoke.yaml")
    store.ensure_campaign("smoke", grid_path="search_spaces/smoke.yaml", grid_yaml=grid.resolved_yaml)
    for i, spec in enumerate(grid.expand()):
        store.mark_running(spec, "smoke")
        if i < 2:
            store.upsert_result(demo_result(spec), campaign="smoke")
    # back-date the rows so the page shows plausible times (a real campaign takes minutes per trial)
    with store.engine.begin() as conn:
        keys = [s.trial_key for s in grid.expand()]
        start = now() - timedelta(minutes=41)
        conn.execute(update(Trial).where(Trial.trial_key.in_(keys[:2])).values(
            started_at=start, finished_at=start + timedelta(minutes=19)))
        conn.execute(update(Trial).where(Trial.trial_key.in_(keys[2:])).values(
            started_at=start + timedelta(minutes=20)))


def shoot(driver: object, url: str, path: Path, wait_for: str | None = None) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By

    driver.set_window_size(WIDTH, 900)  # type: ignore[attr-defined]
    driver.get(url)  # type: ignore[attr-defined]
    if wait_for:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not driver.find_elements(By.CSS_SELECTOR, wait_for):  # type: ignore[attr-defined]
            time.sleep(0.2)
    time.sleep(1.0)
    height = driver.execute_script("return document.documentElement.scrollHeight")  # type: ignore[attr-defined]
    driver.set_window_size(WIDTH, min(int(height) + 20, 2600))  # type: ignore[attr-defined]
    time.sleep(0.8)
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    Image.open(path).convert("RGB").quantize(colors=96).save(path, optimize=True)
    print(path, f"{path.stat().st_size // 1024} KiB")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'leaderboard.sqlite'}"
        store = LeaderboardStore(url)
        specs = fill_demo(store)
        fill_running(store)
        store.engine.dispose()
        one = next(s for s in specs if s.pruner == "tpc" and s.recoverer == "tra" and s.seed == 0)
        other = next(s for s in specs if s.pruner == "tps" and s.recoverer == "tri" and s.seed == 0)
        with serving(url) as base, chromium(Path(tmp) / "profile") as driver:
            shoot(driver, base + "/", out / "web_campaigns.png")
            shoot(driver, base + "/campaign?name=demo&per=10", out / "web_campaign.png", "#pareto .scatterlayer")
            shoot(driver, f"{base}/trial?key={one.trial_key}", out / "web_trial.png", "#curves .scatterlayer")
            shoot(driver, f"{base}/compare?key={one.trial_key}&key={other.trial_key}", out / "web_compare.png",
                  "#curves .scatterlayer")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
