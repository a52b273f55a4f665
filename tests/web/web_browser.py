"""A real headless Chromium for the web tests: Debian's ``chromium`` and ``chromium-driver`` (``.ci/browser``
installs them), driven by Selenium with explicit paths, so Selenium Manager never downloads a browser or driver."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parents[2]
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000", "--hide-scrollbars")


def missing() -> str | None:
    """Why no browser test can run here (``None``: they can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is missing: run `bash .ci/browser` (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    return None


@contextmanager
def chromium(profile: Path, downloads: Path | None = None) -> Iterator[object]:
    """A headless Chromium with a fresh profile in ``profile``; files it downloads land in ``downloads``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # should Selenium Manager ever run: no network

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    if downloads is not None:
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                  "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def serving(db_url: str, *extra: str, env: dict[str, str] | None = None, log: Path | None = None) -> Iterator[str]:
    """``h2ot serve`` on a free port in a subprocess (as a user runs it), its stderr in ``log``; yields its base URL."""
    with tempfile.TemporaryDirectory() as tmp:
        log = log or Path(tmp) / "serve.log"
        with log.open("w") as sink:
            proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "serve", "--db-url", db_url, "--port",
                                     "0", *extra], cwd=REPO, stdout=sink, stderr=sink, env=env)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None and "h2ot serve:" not in log.read_text():
                time.sleep(0.1)
            line = next((ln for ln in log.read_text().splitlines() if ln.startswith("h2ot serve:")), None)
            if line is None:
                raise RuntimeError(f"h2ot serve did not start:\n{log.read_text()}")
            yield line.rsplit(" at ", 1)[1].strip().rstrip("/")
        finally:
            proc.terminate()
            proc.wait(timeout=20)
