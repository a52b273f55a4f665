"""The Starlette app of ``h2ot serve``: routes, templates and assets (plotly.js from the ``plotly`` package).

Routes (all GET; the :class:`~orchestrator.web.security.Guard` refuses every other method)::

    /                          campaigns, live counts                 /api/campaigns[?name=C]  their JSON
    /campaign?name=C&...       leaderboard, Pareto plot               /api/pareto?name=C&x=&y= the plot's data
    /tables?name=C             the campaign's paper tables            /tables/file?name=C&spec=S&ext=md|tex|csv
    /trial?key=K               one trial's whole record               /compare?key=K1&key=K2[&key=...]

Names and keys travel in query strings, never in paths, so any campaign name (slashes, ``<script>``) works
and is escaped like every other user-written text (Jinja2 autoescape; JSON through ``tojson``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from h2ot_core.errors import H2OTError
from orchestrator.web import views
from orchestrator.web.security import Guard
from results.browse import axis_values, status_counts
from results.errors import ResultsError
from results.queries import check_campaign

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
#: how long a browser may keep the static assets (plotly.js is 4.6 MB)
ASSET_MAX_AGE_S = 3600


@dataclass(frozen=True)
class Settings:
    """What the app serves: a read-only ``engine``, the masked database URL it shows, the access token (``None``
    on loopback without one), how often live pages poll (seconds) and the MLflow UI to link runs to."""

    engine: Engine
    db_label: str
    token: str | None = None
    refresh_s: float = 5.0
    mlflow_ui: str | None = None


def plotly_js() -> Path:
    """plotly.min.js as the ``plotly`` package ships it (served by the app: no CDN)."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def _templates(settings: Settings) -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(db_label=settings.db_label, refresh_s=settings.refresh_s,
                       campaign_columns=views.CAMPAIGN_COLUMNS, mlflow_ui=settings.mlflow_ui,
                       cost_fields=views.COST_FIELDS, provenance_fields=views.PROVENANCE_FIELDS)
    env.filters["num"] = lambda value, column: views.num(column, value)  # {{ value|num(column) }}
    return Jinja2Templates(env=env)


def create_app(settings: Settings) -> Starlette:
    """The app over ``settings.engine``; it never writes (see :mod:`orchestrator.web.security`)."""
    templates = _templates(settings)
    engine = settings.engine

    def page(template: str, build: Callable[[Request], dict[str, Any]]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            context = await run_in_threadpool(build, request)
            return templates.TemplateResponse(request, template, context)
        return endpoint

    def api(build: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return JSONResponse(await run_in_threadpool(build, request))
        return endpoint

    def name_of(request: Request) -> str:
        name = request.query_params.get("name")
        if not name:
            raise ResultsError("name the campaign: ?name=CAMPAIGN")
        return name

    def campaigns_page(request: Request) -> dict[str, Any]:
        return {"campaigns": views.campaign_rows(engine)}

    def campaigns_api(request: Request) -> Any:
        names = request.query_params.getlist("name") or None
        return {"columns": [k for k, _ in views.CAMPAIGN_COLUMNS], "campaigns": views.campaign_rows(engine, names)}

    def campaign_page(request: Request) -> dict[str, Any]:
        name = name_of(request)
        params = {k: request.query_params.getlist(k) for k in request.query_params}
        q = views.BoardQuery.parse(engine, params, name)
        return {"q": q, "campaign": views.campaign_rows(engine, [name])[0], "board": views.board(engine, q),
                "axis_values": axis_values(engine, name), "status_counts": status_counts(engine, campaign=name),
                "sortable": views.sortable(engine)}

    def pareto_api(request: Request) -> Any:
        return views.pareto(engine, name_of(request), request.query_params.get("x", "gflops"),
                            request.query_params.get("y", "mpjpe"))

    def tables_page(request: Request) -> dict[str, Any]:
        name = name_of(request)
        check_campaign(engine, name)
        tables, note = views.campaign_tables(engine, name)
        return {"name": name, "tables": [views.table_html(t) for t in tables], "note": note}

    async def table_file(request: Request) -> Response:
        p = request.query_params
        filename, body = await run_in_threadpool(views.table_file, engine, name_of(request), p.get("spec", ""),
                                                 p.get("ext", ""))
        media = {"md": "text/markdown", "tex": "application/x-tex", "csv": "text/csv"}[filename.rsplit(".", 1)[1]]
        return Response(body, media_type=f"{media}; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    def trial_page(request: Request) -> dict[str, Any]:
        return {"t": views.trial(engine, request.query_params.get("key", ""))}

    def compare_page(request: Request) -> dict[str, Any]:
        return {"c": views.compare(engine, request.query_params.getlist("key"))}

    async def plotly(request: Request) -> Response:
        return FileResponse(plotly_js(), media_type="text/javascript",
                            headers={"Cache-Control": f"public, max-age={ASSET_MAX_AGE_S}"})

    async def user_error(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc)}, status_code=400)
        return templates.TemplateResponse(request, "error.html", {"message": str(exc)}, status_code=400)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        return templates.TemplateResponse(request, "error.html", {"message": getattr(exc, "detail", "error")},
                                          status_code=status)

    async def server_error(request: Request, exc: Exception) -> Response:
        # the message may hold a database URL or a path: it goes to the log (masked by results), not to the page
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        return templates.TemplateResponse(request, "error.html", {"message": "internal error (see the server's log)"},
                                          status_code=500)

    routes = [
        Route("/", page("campaigns.html", campaigns_page)),
        Route("/api/campaigns", api(campaigns_api)),
        Route("/campaign", page("campaign.html", campaign_page)),
        Route("/api/pareto", api(pareto_api)),
        Route("/tables", page("tables.html", tables_page)),
        Route("/tables/file", table_file),
        Route("/trial", page("trial.html", trial_page)),
        Route("/compare", page("compare.html", compare_page)),
        Route("/static/vendor/plotly.min.js", plotly),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(Guard, token=settings.token), Middleware(GZipMiddleware, minimum_size=1024, compresslevel=5)]
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={H2OTError: user_error, HTTPException: http_error,
                                         Exception: server_error})
