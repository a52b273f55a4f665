"""``h2ot serve`` over HTTP, without a browser: read-only, the token, no password on a page or in the log.

One server (a subprocess) for the module, over a PostgreSQL leaderboard whose URL carries a password (the test
server trusts local connections, so any password opens it) and with a token.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from demo_data import fill_demo
from testkit import fresh_pg_database
from typer.testing import CliRunner
from web_browser import serving

from orchestrator.cli import app
from orchestrator.web.access import TOKEN_ENV_VAR, is_loopback
from results.store import LeaderboardStore

pytestmark = [pytest.mark.postgres, pytest.mark.server]

PASSWORD = "pw-3f9c-never-shown"
TOKEN = "tok-8d1e-test"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with fresh_pg_database("h2ot_serve") as url:
        store = LeaderboardStore(url)
        fill_demo(store, seeds=1)
        store.engine.dispose()
        secret = url.replace("postgres@", f"postgres:{PASSWORD}@")
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV_VAR}
        with serving(secret, "--token", TOKEN, env=env, log=log) as base:
            yield base, log


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_token_is_required_and_kept_in_a_cookie(server):
    base, _ = server
    assert fetch(base + "/")[0] == 401
    assert fetch(base + "/api/campaigns")[0] == 401
    assert fetch(base + "/?token=wrong")[0] == 401
    status, headers, _ = fetch(base + f"/campaign?name=demo&token={TOKEN}")
    assert status == 303 and headers["location"] == "/campaign?name=demo"  # the token leaves the address bar
    cookie = headers["set-cookie"]
    assert TOKEN in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    status, _, body = fetch(base + "/campaign?name=demo", headers={"Cookie": f"h2ot_token={TOKEN}"})
    assert status == 200 and "Leaderboard" in body
    status, _, body = fetch(base + "/api/campaigns", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and json.loads(body)["campaigns"][0]["name"] == "demo"


def test_nothing_but_reads_and_no_password_anywhere(server):
    base, log = server
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        status, headers, _ = fetch(base + "/api/campaigns", method, auth)
        assert status == 405 and headers["allow"] == "GET, HEAD"
    status, headers, body = fetch(base + "/", headers=auth)
    assert status == 200 and "postgres:***@" in body and PASSWORD not in body
    assert "script-src 'self'" in headers["content-security-policy"]
    status, _, body = fetch(base + "/campaign?name=nope", headers=auth)
    assert status == 400 and "demo" in body and PASSWORD not in body  # a did-you-mean, no traceback
    assert fetch(base + "/static/vendor/plotly.min.js", headers=auth)[2].lstrip().startswith("/**")
    text = log.read_text()
    assert "read-only" in text and PASSWORD not in text and TOKEN not in text


def test_non_loopback_host_needs_a_token(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV_VAR, raising=False)
    res = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--db-url", "sqlite:///nowhere.sqlite"])
    assert res.exit_code == 2
    assert "--token" in res.output and TOKEN_ENV_VAR in res.output and "Traceback" not in res.output
    assert not Path("nowhere.sqlite").exists()
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
