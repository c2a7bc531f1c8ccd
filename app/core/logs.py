"""Structured logs: one JSON object per line, each tagged with the request id of its request.

Named ``logs`` so it never shadows the standard library's ``logging``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str | None] = ContextVar("repic_request_id", default=None)

REQUEST_ID_HEADER = "x-request-id"
ACCESS_LOGGER = "repic.access"
UNMATCHED_ROUTE = "unmatched"

# A caller's id is echoed into our logs and headers, so only short plain tokens are kept.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Extras whose names look like credentials are never written out, whoever passes them.
_SECRET_KEY = re.compile(
    r"(^|[_.-])(authorization|api[_-]?key|token|password|secret|cookie)($|[_.-])", re.IGNORECASE
)
_RESERVED = ("ts", "level", "logger", "msg", "request_id")
# Not extras: the record's own fields, and uvicorn's ANSI-coloured copy of its message.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName", "color_message"}


def route_template(scope: Mapping[str, Any]) -> str:
    """The matched route's path template (``/concepts/{concept_id}``), never the raw path.

    Starlette stores the matched route in the scope while routing, so this is only meaningful
    after the inner application has run.
    """
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


def _safe_value(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key):
        return "[redacted]"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    return value


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "request_id", ...extras}`` on a single line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRIBUTES or key in _RESERVED or key.startswith("_"):
                continue
            payload[key] = _safe_value(key, value)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.request_id = getattr(record, "request_id", None) or request_id_var.get() or "-"
        return super().format(record)


def configure_logging(
    level: int | str = logging.INFO, json: bool = True, stream: TextIO | None = None
) -> None:
    """Send every logger to one handler on ``stream`` (stdout by default), JSON or plain text.

    uvicorn's own loggers are routed through it too; its access log is silenced because
    :class:`RequestIdMiddleware` writes a better one, and the HTTP client's request lines are
    kept to warnings.
    """
    handler = logging.StreamHandler(stream or sys.stdout)
    if json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            _TextFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # httpx logs every outgoing URL at INFO: noise per caption, and query strings may carry data.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    if json and stream is None:
        _quiet_terminal_output()


def _quiet_terminal_output() -> None:
    """Keep the log stream machine-readable: libraries' progress bars (tqdm, as used by the
    Hugging Face hub, transformers and open_clip) redraw a line with carriage returns, and Python
    warnings print multi-line text, all on stderr. Warnings become log records; whatever else is
    written to stderr becomes one record per finished line, and redraws are dropped."""
    os.environ["TQDM_DISABLE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    logging.captureWarnings(True)
    if not isinstance(sys.stderr, StderrToLog):
        sys.stderr = StderrToLog(logging.getLogger("stderr"))


class StderrToLog(io.TextIOBase):
    """A text stream that logs each finished line; a segment ended by ``\r`` is a progress
    redraw, superseded by the next one, and is dropped."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger
        self._pending = ""
        self._busy = threading.local()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if getattr(self._busy, "active", False):
            return len(text)  # a handler writing to stderr itself must not loop back here
        self._busy.active = True
        try:
            self._pending += text
            while (cut := _first_break(self._pending)) >= 0:
                segment, ender = self._pending[:cut], self._pending[cut]
                self._pending = self._pending[cut + 1 :]
                if ender == "\n" and segment.strip():
                    self._logger.warning("%s", segment.rstrip())
        finally:
            self._busy.active = False
        return len(text)


def _first_break(text: str) -> int:
    breaks = [i for i in (text.find("\n"), text.find("\r")) if i >= 0]
    return min(breaks) if breaks else -1


def _incoming_request_id(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            if _SANE_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Give each HTTP request an id, expose it to logs, echo it, and write one access line.

    The access line holds method, route template, status, duration and the id: never bodies,
    query strings or headers, so images, captions and keys cannot leak into logs.
    """

    def __init__(self, app: ASGIApp, logger_name: str = ACCESS_LOGGER) -> None:
        self.app = app
        self.logger = logging.getLogger(logger_name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope)
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != REQUEST_ID_HEADER.encode()
                ]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            route = route_template(scope)
            self.logger.log(
                logging.ERROR if status >= 500 else logging.INFO,
                "%s %s %d",
                scope["method"],
                route,
                status,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                },
            )
            request_id_var.reset(token)
