"""``GET /ui``: the training dashboard, static HTML, CSS and plain JavaScript with no build step.

The page (``fitness_weights_api/ui/``) lists the jobs over HTTP and follows one over ``WS /ws/jobs/{job_id}``
(:mod:`.live_socket`): its key figures, charts of every logged metric with the moments of live changes marked, a
parameter console and a log viewer. Its charts are plotly's: ``plotly.min.js`` is served from the installed
``plotly`` package, so the page needs no CDN and works with no network. The page is open (it holds nothing); what
it shows needs a token, which the user types and the page keeps in the tab's ``sessionStorage``.

Every answer carries a Content-Security-Policy that allows scripts, styles and connections from the service
itself only (plotly sets inline styles, so styles also allow ``'unsafe-inline'``), no framing and no other form
target.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

__all__ = ["CONTENT_SECURITY_POLICY", "UI_DIR", "add_dashboard_routes", "plotly_js"]

UI_DIR = Path(__file__).parent / "ui"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' data: blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"}
_STATIC = {"ui.js": "text/javascript", "ui.css": "text/css"}


def plotly_js() -> Path:
    """``plotly.min.js`` of the installed ``plotly`` package (found, not imported: the page needs the file only)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        raise HTTPException(404, "the dashboard's charts need plotly: pip install 'fitness-weights[api]'")
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


def add_dashboard_routes(app: FastAPI) -> None:
    """Add ``GET /ui`` and its files (``/ui/static/...``) to ``app``, outside the OpenAPI document."""
    page = (UI_DIR / "index.html").read_text(encoding="utf-8")

    @app.get("/ui", include_in_schema=False, response_class=HTMLResponse)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page, headers=_HEADERS)

    @app.get("/ui/static/{name}", include_in_schema=False)
    async def dashboard_file(name: str) -> FileResponse:
        if name == "plotly.min.js":
            path, media_type = plotly_js(), "text/javascript"
        elif name in _STATIC:
            path, media_type = UI_DIR / name, _STATIC[name]
        else:
            raise HTTPException(404, "no such file")
        return FileResponse(path, media_type=media_type, headers={**_HEADERS, "Cache-Control": "max-age=3600"})
