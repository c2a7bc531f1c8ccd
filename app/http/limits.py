"""A body-size guard that answers 413 while the upload streams, before it is parsed."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.problems import PROBLEM_MEDIA_TYPE, TYPE_PREFIX


class _BodyTooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``max_bytes(method, path)``: by Content-Length at once, else
    while reading. The cap depends on the route, so a one-photo route never reads a body sized
    for ten photos."""

    def __init__(self, app: ASGIApp, max_bytes: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_for = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope["method"], scope["path"])
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
                await self._reject(scope, send, max_bytes)
                return

        received = 0
        exceeded = False
        rejected = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # Frameworks may turn the exception raised in receive() into their own 400; once the
            # limit was crossed, whatever the app answers is replaced by our 413.
            nonlocal rejected
            if not exceeded:
                await send(message)
            elif not rejected:
                rejected = True
                await self._reject(scope, send, max_bytes)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if not rejected:
                await self._reject(scope, send, max_bytes)

    @staticmethod
    async def _reject(scope: Scope, send: Send, max_bytes: int) -> None:
        body = json.dumps(
            {
                "type": TYPE_PREFIX + "body-too-large",
                "title": "Content Too Large",
                "status": 413,
                "detail": f"The request body exceeds {max_bytes:,} bytes; send smaller "
                "or fewer images.",
                "instance": scope.get("path", ""),
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
