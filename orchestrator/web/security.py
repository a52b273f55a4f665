"""The web app's guards: read-only methods, the access token off loopback, and headers that keep a page's
scripts to the app's own files.

The token is given once as ``?token=...`` (the link ``h2ot serve`` prints); the app answers with a cookie
(HttpOnly, SameSite=Strict) and a redirect to the same page without it, so the token does not stay in the
address bar, the history or a shared link. Scripts and API clients may send ``Authorization: Bearer ...``.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlencode

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp

COOKIE = "h2ot_token"
#: the only methods served: nothing the app answers changes anything
READ_METHODS = frozenset({"GET", "HEAD"})
#: scripts, styles, images and requests only from the app itself (no CDN, no inline script); plotly.js
#: sets inline styles on its SVG, hence ``style-src 'unsafe-inline'``
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


def _given(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.cookies.get(COOKIE)


class Guard(BaseHTTPMiddleware):
    """Refuses writes (405), asks for the token when one is set (401) and adds :data:`HEADERS`."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    def _ok(self, value: str | None) -> bool:
        return self.token is None or (value is not None and hmac.compare_digest(value.encode(), self.token.encode()))

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.method not in READ_METHODS:
            response: Response = PlainTextResponse("read-only: only GET and HEAD are served\n", status_code=405,
                                                   headers={"Allow": "GET, HEAD"})
        elif "token" in request.query_params and self.token is not None:
            if self._ok(request.query_params["token"]):
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            else:
                response = PlainTextResponse("wrong token\n", status_code=401)
        elif not self._ok(_given(request)):
            response = PlainTextResponse("a token is needed: open the link `h2ot serve` printed "
                                         "(…/?token=...)\n", status_code=401)
        else:
            response = await call_next(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response
