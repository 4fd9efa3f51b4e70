"""The operator dashboard: GET /dashboard on the service's own port, a single page served from this package.

No CDN and no build step at run time: the page is plain ES modules (static/js/) on two vendored libraries
(static/vendor/: htm + Preact for the UI, lightweight-charts for the charts; scripts/vendor-dashboard.sh
refreshes them from npm). The page reads only the API routes and the live feed, with the token it was given
(session storage; a header on every request, the Sec-WebSocket-Protocol on the feed).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
# everything from this origin only (scripts included); inline style attributes are allowed because the chart
# library writes them on the elements it builds (styles cannot run code)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@router.get("/dashboard")
async def dashboard() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


@router.get("/dashboard/")
async def dashboard_slash() -> RedirectResponse:
    return RedirectResponse("/dashboard")


def install(app: FastAPI) -> None:
    """Serve the page at /dashboard and its files at /dashboard/static/."""
    app.include_router(router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
