"""The web UI at ``/``: the single-page app that ``web/`` builds into ``app/ui_dist``.

The page and its assets come from this app alone under a strict CSP (scripts from this origin
only, no inline script); the app talks to the REST API through the generated TypeScript SDK.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from app.http.problems import ProblemError

UI_DIR = Path(__file__).parent.parent / "ui_dist"
ASSETS_PATH = "/ui"
# Photos are shown from blob: URLs (fetched with the API key); the boxes are inline SVG.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install_ui(app: FastAPI, ui_dir: Path = UI_DIR) -> None:
    """`/` (the app's page) and its bundle under `/ui`; a 503 problem when it was not built."""
    index = ui_dir / "index.html"
    if ui_dir.is_dir():
        app.mount(ASSETS_PATH, StaticFiles(directory=ui_dir), name="ui")

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        if not index.is_file():
            raise ProblemError(
                503,
                "ui-not-built",
                "The web UI is not built: run `make serve` (or `make web`), which builds web/ "
                "into app/ui_dist.",
            )
        return FileResponse(index, headers=_HEADERS)
