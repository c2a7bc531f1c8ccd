"""Response hygiene for every request: a last-resort 500 problem and security headers."""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logs import request_id_var
from app.http.problems import PROBLEM_MEDIA_TYPE, TYPE_PREFIX

log = logging.getLogger(__name__)


class UnhandledErrorMiddleware:
    """Turn an exception nobody handled into a 500 problem inside the request's context.

    Starlette's own last resort runs outside every middleware: its 500 carries no request id,
    its log line has none, and it re-raises so the server drops the connection. Here the error is
    logged with the request id, the answer goes through the request-id middleware, and it says
    ``Connection: close`` so a keep-alive client opens a fresh connection instead of failing.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            # Only the exception's type and traceback: SQL parameters are hidden by the engine,
            # and request bodies are never part of the message.
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await self._internal_error(scope, send)

    @staticmethod
    async def _internal_error(scope: Scope, send: Send) -> None:
        body = json.dumps(
            {
                "type": TYPE_PREFIX + "internal-error",
                "title": "Internal Server Error",
                "status": 500,
                "detail": "An unexpected error occurred; it has been logged. Retry, and report "
                f"the X-Request-ID of this response ({request_id_var.get()}) if it persists.",
                "instance": scope.get("path", ""),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """``X-Content-Type-Options: nosniff`` everywhere; JSON answers are personal, so they get
    ``Cache-Control: no-store`` unless the route chose a caching policy itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"x-content-type-options", b"server")
                ]
                names = {k.lower() for k, _ in headers}
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                headers.append((b"x-content-type-options", b"nosniff"))
                if b"cache-control" not in names and b"json" in content_type:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
