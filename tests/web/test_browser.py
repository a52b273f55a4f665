"""``h2ot serve`` in a real headless Chromium: one server (a subprocess, as a user starts it) and one browser for
the module, over a SQLite leaderboard holding the demo campaign and a campaign with ``<script>`` in its name.

Covers: the demo campaign's page sorts, filters (the view kept in the URL), pages, switches the Pareto plot's
cost axis, shows a point's configuration on hover and opens its trial on a click, whose curves are drawn; a paper
table downloaded from the page is byte-identical to ``h2ot tables build``; the campaigns page updates in place
while a real ``h2ot campaign run`` of the smoke grid writes the same database; names and error texts holding
``<script>`` are shown as text and never run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlparse

import pytest
from demo_data import HOSTILE_CAMPAIGN, HOSTILE_ERROR, fill_demo, fill_hostile
from web_browser import REPO, chromium, missing, serving

from results.store import LeaderboardStore

pytestmark = [pytest.mark.server, pytest.mark.timeout(600)]


@pytest.fixture(autouse=True, scope="module")
def _browser_installed() -> None:
    # a missing browser fails the tests (with how to install it) rather than skipping them
    why = missing()
    if why is not None:
        pytest.fail(why)

SMOKE = REPO / "search_spaces" / "smoke.yaml"
WAIT_S = 30


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """``(base URL, driver, database URL, download folder, tmp root)``: the demo leaderboard served and a browser."""
    root = tmp_path_factory.mktemp("web")
    url = f"sqlite:///{root / 'leaderboard.sqlite'}"
    store = LeaderboardStore(url)
    fill_demo(store)
    fill_hostile(store)
    store.engine.dispose()
    downloads = root / "downloads"
    downloads.mkdir()
    with serving(url, "--refresh", "0.5") as base, chromium(root / "profile", downloads) as driver:
        yield base, driver, url, downloads, root


def wait_for(condition, timeout: float = WAIT_S, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def column(driver, name: str) -> list[str]:
    from selenium.webdriver.common.by import By

    heads = [th.text.split(" ")[0] for th in driver.find_elements(By.CSS_SELECTOR, "#leaderboard thead th")]
    i = heads.index(name)
    return [tr.find_elements(By.TAG_NAME, "td")[i].text
            for tr in driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")]


def query(driver) -> dict[str, list[str]]:
    return parse_qs(urlparse(driver.current_url).query)


def test_demo_campaign_sort_filter_pareto_trial_curves(site):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, driver, *_ = site
    driver.get(base + "/")
    driver.find_element(By.XPATH, "//table[@id='campaigns']//a[text()='demo']").click()
    wait_for(lambda: driver.find_elements(By.ID, "leaderboard"), what="the demo campaign page")
    assert query(driver)["name"] == ["demo"]
    assert driver.find_element(By.CSS_SELECTOR, "#campaign-status td[data-col='complete']").text == "14"

    # sort: the default is the campaign's metric, best first; a click on a header sorts by it, twice reverses
    mpjpe = [float(v) for v in column(driver, "mpjpe")]
    assert mpjpe == sorted(mpjpe) and len(mpjpe) == 14
    driver.find_element(By.CSS_SELECTOR, "a.sort[data-col='gflops']").click()
    wait_for(lambda: query(driver).get("sort") == ["gflops"], what="sort=gflops")
    gflops = [float(v) for v in column(driver, "gflops")]
    assert gflops == sorted(gflops) and gflops[0] < gflops[-1]
    driver.find_element(By.CSS_SELECTOR, "a.sort[data-col='gflops']").click()
    wait_for(lambda: query(driver).get("dir") == ["desc"], what="dir=desc")
    assert [float(v) for v in column(driver, "gflops")] == sorted(gflops, reverse=True)
    driver.find_element(By.CSS_SELECTOR, "a.sort[data-col='pruner']").click()  # an axis sorts too
    wait_for(lambda: query(driver).get("sort") == ["pruner"], what="sort=pruner")
    assert column(driver, "pruner") == sorted(column(driver, "pruner"))

    # filter: the form's choices go into the URL, so the link reproduces the view
    Select(driver.find_element(By.ID, "filter-pruner")).select_by_value("tpc")
    Select(driver.find_element(By.ID, "filter-recoverer")).select_by_value("tri")
    driver.find_element(By.ID, "apply").click()
    wait_for(lambda: query(driver).get("pruner") == ["tpc"], what="pruner=tpc in the URL")
    assert query(driver)["recoverer"] == ["tri"]
    keys = column(driver, "trial_key")
    assert set(column(driver, "pruner")) == {"tpc"} and set(column(driver, "recoverer")) == {"tri"}
    assert len(keys) == 4  # two schedules x two seeds
    link = driver.current_url
    driver.get(base + "/")
    driver.get(link)
    assert column(driver, "trial_key") == keys

    # mean over seeds: mean ± std [CI] per configuration and N, as `h2ot leaderboard --agg mean`
    driver.find_element(By.ID, "group-seeds").click()
    driver.find_element(By.ID, "apply").click()
    wait_for(lambda: query(driver).get("group") == ["seeds"], what="group=seeds")
    assert column(driver, "n") == ["2", "2"]
    assert all("±" in cell and "[" in cell for cell in column(driver, "mpjpe"))

    # pagination: 5 per page
    driver.get(f"{base}/campaign?name=demo&per=5")
    assert "page 1 of 3" in driver.find_element(By.ID, "pages").text
    first = column(driver, "trial_key")
    driver.find_element(By.ID, "next").click()
    wait_for(lambda: query(driver).get("page") == ["2"], what="page 2")
    assert not set(first) & set(column(driver, "trial_key")) and len(column(driver, "trial_key")) == 5

    # the Pareto plot: the cost axis switches in place (and in the URL); hover names the configuration
    driver.get(f"{base}/campaign?name=demo")
    plot = driver.find_element(By.ID, "pareto")
    wait_for(lambda: plot.get_attribute("data-points") == "14", what="the Pareto plot")
    driver.find_element(By.CSS_SELECTOR, "#pareto-x a[data-x='latency_ms']").click()
    wait_for(lambda: "latency" in driver.execute_script(
        "const p = document.getElementById('pareto'); return (p.layout && p.layout.xaxis.title.text) || ''"),
             what="the latency axis")
    assert query(driver)["x"] == ["latency_ms"]
    point = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#pareto .scatterlayer .trace:last-child "
                                                                   "path.point"), what="front points")[0]
    ActionChains(driver).move_to_element(point).perform()
    hover = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#pareto .hoverlayer .hovertext"),
                     what="the hover label")
    assert "pruner=" in hover[0].text and "schedule=" in hover[0].text
    ActionChains(driver).move_to_element(point).click().perform()
    wait_for(lambda: urlparse(driver.current_url).path == "/trial", what="the trial page")
    key = query(driver)["key"][0]
    assert driver.find_element(By.ID, "trial-key").text == key
    assert key in driver.title

    # its curves: one plot per recorded series, each with the two epochs
    curves = wait_for(lambda: driver.find_element(By.ID, "curves").get_attribute("data-series"),
                      what="the curves")
    assert int(curves) >= 3
    ys = driver.execute_script("return document.getElementById('curve-test_mpjpe').data[0].y")
    assert len(ys) == 2 and ys[1] < ys[0]
    assert driver.find_element(By.XPATH, "//table[@id='actions']//td[text()='Walking']")


def test_table_downloads_match_tables_build(site, tmp_path):
    from selenium.webdriver.common.by import By

    base, driver, url, downloads, _ = site
    driver.get(f"{base}/campaign?name=demo")
    driver.find_element(By.ID, "tables-link").click()
    wait_for(lambda: driver.find_elements(By.ID, "table-demo"), what="the demo table")
    built = tmp_path / "built"
    env = {**os.environ, "H2OT_DB_URL": url}
    res = subprocess.run([sys.executable, "-m", "orchestrator.cli", "tables", "build", "demo", "--out", str(built)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    for ext in ("md", "tex", "csv"):
        driver.find_element(By.CSS_SELECTOR, f"#table-demo a.download[data-ext='{ext}']").click()
        got = wait_for(lambda ext=ext: (p := downloads / f"demo.{ext}").exists() and p.stat().st_size and p,
                       what=f"demo.{ext} downloaded")
        assert got.read_bytes() == (built / f"demo.{ext}").read_bytes(), ext
    # the page shows the same cells: the unpruned row's MPJPE, bold as in the Markdown
    md = (built / "demo.md").read_text()
    bold = driver.find_element(By.CSS_SELECTOR, "#table-demo tbody strong").text
    assert f"**{bold}**" in md


def test_script_in_names_and_errors_is_shown_as_text(site):
    from selenium.webdriver.common.by import By

    base, driver, *_ = site
    driver.get(base + "/")
    link = driver.find_element(By.XPATH, "//table[@id='campaigns']//tr[@data-name]//a[contains(., 'script')]")
    assert link.text == HOSTILE_CAMPAIGN
    link.click()
    wait_for(lambda: driver.find_elements(By.ID, "leaderboard"), what="the campaign page")
    assert driver.find_element(By.ID, "campaign-name").text == HOSTILE_CAMPAIGN
    assert driver.find_element(By.CSS_SELECTOR, "#campaign-status td[data-col='failed']").text == "1"
    driver.find_element(By.CSS_SELECTOR, "#leaderboard td.key a").click()
    wait_for(lambda: driver.find_elements(By.ID, "trial-error"), what="the failed trial's page")
    error = driver.find_element(By.ID, "trial-error")
    assert error.text == HOSTILE_ERROR
    assert not error.find_elements(By.TAG_NAME, "b") and not error.find_elements(By.TAG_NAME, "script")
    assert driver.find_element(By.CSS_SELECTOR, "a.campaign-link").text == HOSTILE_CAMPAIGN
    assert driver.execute_script("return [window.__pwned_campaign, window.__pwned_error]") == [None, None]
    driver.get(base + "/")
    assert driver.execute_script("return [window.__pwned_campaign, window.__pwned_error]") == [None, None]


@pytest.mark.slow
@pytest.mark.ray
def test_campaigns_page_updates_while_a_campaign_runs(site):
    from selenium.webdriver.common.by import By

    base, driver, url, _, root = site
    runs = root / "runs"
    (runs / "data").mkdir(parents=True)
    env = {**os.environ, "H2OT_DB_URL": url, "H2OT_RUNS_DIR": str(runs), "H2OT_DATA_DIR": str(runs / "data"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{runs / 'mlflow.db'}", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
           "RAY_USAGE_STATS_ENABLED": "0"}
    driver.get(base + "/")
    assert not driver.find_elements(By.CSS_SELECTOR, "tr[data-name='smoke']")
    log = (root / "campaign.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "campaign", "run", str(SMOKE),
                             "--retries", "0"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # the new campaign appears (the page reloads itself when the set of campaigns changes) ...
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "tr[data-name='smoke']"), timeout=90,
                 what="the smoke campaign's row")
        driver.execute_script("window.__still_this_page = true")

        def cell(key: str) -> str:
            return driver.find_element(By.CSS_SELECTOR, f"tr[data-name='smoke'] td[data-col='{key}']").text

        seen = {(cell("complete"), cell("running"), cell("pending"))}
        # ... and its counts change in place until every trial is complete
        deadline = time.monotonic() + 150
        while cell("complete") != "4" and time.monotonic() < deadline:
            seen.add((cell("complete"), cell("running"), cell("pending")))
            time.sleep(0.2)
        seen.add((cell("complete"), cell("running"), cell("pending")))
        assert proc.wait(timeout=120) == 0, (root / "campaign.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert cell("complete") == "4" and cell("pending") == "0" and cell("running") == "0"
    assert len(seen) >= 2 and any(complete != "4" for complete, _, _ in seen), seen
    assert driver.execute_script("return window.__still_this_page") is True  # updated without a reload
    assert float(cell("device_hours")) > 0
