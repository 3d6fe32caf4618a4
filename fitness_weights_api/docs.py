"""The ``/docs`` page (Swagger UI) served from the service itself: no CDN, works on a network with no way out.

FastAPI's own ``/docs`` loads unpinned Swagger UI files from ``cdn.jsdelivr.net`` and its favicon from
``fastapi.tiangolo.com``. Here the same page loads them from :data:`ASSETS_URL`, a static mount of the files
that the ``fastapi-offline`` package ships (Swagger UI 5, which renders the OpenAPI 3.1 document FastAPI emits;
pinned with the package in ``constraints.txt``). Create the app with ``docs_url=None, redoc_url=None``, then
call :func:`add_docs_routes`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_URL", "DOCS_URL", "add_docs_routes", "assets_dir"]

DOCS_URL = "/docs"
ASSETS_URL = "/docs-assets"
"""Where the Swagger UI files are mounted: ``swagger-ui-bundle.js``, ``swagger-ui.css``, ``favicon.png``."""


def assets_dir() -> Path:
    """The folder of Swagger UI files inside the installed ``fastapi-offline`` package."""
    return Path(str(resources.files("fastapi_offline") / "static"))


def add_docs_routes(app: FastAPI) -> None:
    """Mount the Swagger UI files and add ``GET /docs`` and its OAuth2 redirect page, all outside the schema.

    Args:
        app: The application, created with ``docs_url=None, redoc_url=None`` (so that FastAPI adds no page of
            its own) and an ``openapi_url`` (the document the page renders).

    Raises:
        ValueError: If the app has no OpenAPI document, or FastAPI's own docs page is still on.
    """
    if app.openapi_url is None:
        raise ValueError("the docs page needs the app's OpenAPI document (openapi_url is None)")
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None, redoc_url=None: add_docs_routes serves the docs page")
    openapi_url = app.openapi_url
    redirect_url = app.swagger_ui_oauth2_redirect_url
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")

    # FastAPI routes (not plain Starlette ones, as FastAPI's own /docs is): /metrics counts them by their path
    @app.get(DOCS_URL, include_in_schema=False, response_class=HTMLResponse)
    async def swagger_ui_html(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")  # behind a proxy that strips a prefix
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=None if redirect_url is None else root + redirect_url,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    if redirect_url is not None:

        @app.get(redirect_url, include_in_schema=False, response_class=HTMLResponse)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()
