"""``h2ot serve``: the leaderboard as a read-only web app (campaigns live, filters, the Pareto front, trials).

It binds 127.0.0.1 unless ``--host`` says otherwise; any other address needs an access token (``--token`` or
``$H2OT_SERVE_TOKEN``), which every request must then carry (see :mod:`orchestrator.web.security`). The
database is opened read-only; its URL is shown with the password masked, and no request is logged (a token
given as ``?token=`` would be).
"""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer

from orchestrator.commands.options import DbUrlOpt
from orchestrator.console import err, fail, user_errors
from orchestrator.web.access import TOKEN_ENV_VAR, is_loopback

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


@user_errors
def serve(
    db_url: DbUrlOpt = None,
    host: Annotated[str, typer.Option(help="address to bind; anything but loopback needs --token")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="TCP port (0: any free one)")] = DEFAULT_PORT,
    token: Annotated[str | None, typer.Option(
        help=f"access token every request must carry (default ${TOKEN_ENV_VAR}); required off loopback",
        show_default=False)] = None,
    refresh: Annotated[float, typer.Option(help="seconds between the live pages' updates")] = 5.0,
    mlflow_ui: Annotated[str | None, typer.Option(
        "--mlflow-ui", help="MLflow UI base URL, to link each trial to its run (default: $MLFLOW_TRACKING_URI "
                            "when it is an http(s) server)", show_default=False)] = None,
) -> None:
    """Serve the leaderboard read-only in a browser: campaigns, leaderboards, Pareto fronts, trials, tables."""
    import uvicorn

    from orchestrator.web.app import Settings, create_app
    from results.db import mask_url, open_read_only, resolve_url

    token = token or os.environ.get(TOKEN_ENV_VAR) or None
    if not is_loopback(host) and token is None:
        raise fail(f"--host {host}: serving beyond this machine needs an access token: give --token TOKEN or "
                   f"set {TOKEN_ENV_VAR} (or bind 127.0.0.1 and use an SSH tunnel)")
    if not 0 <= port <= 65535:
        raise fail(f"--port {port}: expected 0 to 65535")
    if refresh <= 0:
        raise fail(f"--refresh {refresh}: expected a number of seconds > 0")
    label = mask_url(resolve_url(db_url))
    tracking = os.environ.get("MLFLOW_TRACKING_URI", "")
    ui = mlflow_ui or (tracking if tracking.startswith(("http://", "https://")) else "")
    settings = Settings(open_read_only(db_url, upgrade=False), label, token, refresh, ui.rstrip("/") or None)
    sock = _listen(host, port)  # here: a busy port is one clear line, and --port 0 knows its port
    config = uvicorn.Config(create_app(settings), log_level="warning", access_log=False, server_header=False)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    err.print(f"h2ot serve: leaderboard {label} (read-only) at http://{shown}:{bound}/", highlight=False,
              markup=False)
    if token is not None:
        err.print(f"a token is required: open http://{shown}:{bound}/?token=<the token from --token or "
                  f"{TOKEN_ENV_VAR}> once; the browser keeps it as a cookie", highlight=False, markup=False)
    uvicorn.Server(config).run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port``, or a clear error; connections wait in its backlog until uvicorn
    accepts them, so the address printed is usable at once."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        raise fail(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); "
                   f"another port: --port N (0: any free one)") from None
    return sock


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
