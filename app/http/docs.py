"""API docs that work offline and under a strict CSP: Swagger UI and ReDoc from our own files.

The assets come from the pinned ``fastapi-offline`` package, which ships them; nothing is
loaded from a CDN and no page runs an inline script (Swagger UI's set-up is a script of ours
too), so the pages keep working under ``script-src 'self'``. ``/`` sends a browser to the docs.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
# Swagger UI and ReDoc style elements inline and ReDoc searches in a blob: worker; scripts
# come only from this origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def _page(title: str, head: str, body: str) -> HTMLResponse:
    html = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n"
        f'<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon.png">\n'
        f"{head}</head>\n<body>\n{body}</body>\n</html>\n"
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": CSP})


def install_docs(app: FastAPI) -> None:
    """`/docs` (Swagger UI), `/redoc` and their assets under `/docs-assets`."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    swagger_config = {
        "url": openapi_url,
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "persistAuthorization": True,
    }
    swagger_init = (
        "window.ui = SwaggerUIBundle(Object.assign("
        f"{json.dumps(swagger_config)}, "
        "{presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset], "
        "layout: 'BaseLayout'}));\n"
    )

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _page(
            f"{app.title} - Swagger UI",
            f'<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">\n',
            '<div id="swagger-ui"></div>\n'
            f'<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>\n'
            '<script src="/docs/swagger-init.js"></script>\n',
        )

    @app.get("/docs/swagger-init.js", include_in_schema=False)
    async def swagger_ui_init() -> Response:
        return Response(swagger_init, media_type="text/javascript")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _page(
            f"{app.title} - ReDoc",
            "",
            f'<redoc spec-url="{escape(openapi_url)}"></redoc>\n'
            f'<script src="{ASSETS_PATH}/redoc.standalone.js"></script>\n',
        )
