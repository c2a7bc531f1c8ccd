"""app.core.logs: JSON lines, request ids end to end, and access lines that leak nothing."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from app.core.logs import (
    JsonFormatter,
    RequestIdMiddleware,
    configure_logging,
    request_id_var,
)

SECRET_KEY = "rk_live_0123456789abcdef"
CAPTION = "<bo> sleeps on the sofa"


_TOUCHED_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put back the global logging state that configure_logging() changes."""
    saved = {
        name: (list(logger.handlers), logger.level, logger.propagate, logger.disabled)
        for name in _TOUCHED_LOGGERS
        for logger in [logging.getLogger(name)]
    }
    yield
    for name, (handlers, level, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled


@pytest.fixture
def log_stream(restore_logging: None) -> io.StringIO:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    return stream


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _app() -> FastAPI:
    app = FastAPI()
    log = logging.getLogger("repic.test")

    @app.post("/caption/{style}")
    async def caption(style: str, request: Request) -> dict[str, str]:
        await request.body()
        log.info("captioned")
        return {"caption": CAPTION}

    @app.get("/sync")
    def in_thread() -> dict[str, str | None]:
        log.info("from the thread pool")
        return {"request_id": request_id_var.get()}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_middleware(RequestIdMiddleware)
    return app


def _client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def _record(msg: str, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("repic.x", logging.WARNING, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def test_formatter_writes_one_json_object_per_line() -> None:
    token = request_id_var.set("req-1")
    try:
        line = JsonFormatter().format(_record("two\nlines", concept_count=3))
    finally:
        request_id_var.reset(token)
    assert "\n" not in line
    payload = json.loads(line)
    assert payload["msg"] == "two\nlines"
    assert payload["level"] == "WARNING"
    assert payload["logger"] == "repic.x"
    assert payload["request_id"] == "req-1"
    assert payload["concept_count"] == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", payload["ts"])


def test_formatter_redacts_credentials_and_summarises_bytes() -> None:
    record = _record(
        "upload",
        authorization=f"Bearer {SECRET_KEY}",
        api_key=SECRET_KEY,
        vlm_access_token=SECRET_KEY,
        prompt_tokens=812,
    )
    record.__dict__["image"] = b"\x89PNG" + bytes(96)
    payload = json.loads(JsonFormatter().format(record))
    assert SECRET_KEY not in json.dumps(payload)
    assert payload["authorization"] == payload["api_key"] == "[redacted]"
    assert payload["vlm_access_token"] == "[redacted]"
    assert payload["prompt_tokens"] == 812
    assert payload["image"] == "<100 bytes>"


def test_formatter_keeps_exceptions_and_reserved_keys() -> None:
    try:
        raise ValueError("bad image")
    except ValueError:
        record = logging.LogRecord("repic.x", logging.ERROR, __file__, 1, "failed", None, None)
        record.exc_info = sys.exc_info()
    record.__dict__["msg_extra"] = "kept"
    payload = json.loads(JsonFormatter().format(record))
    assert "ValueError: bad image" in payload["exc"]
    assert payload["msg"] == "failed"
    assert payload["msg_extra"] == "kept"


async def test_request_id_is_generated_echoed_and_logged(log_stream: io.StringIO) -> None:
    async with _client() as client:
        response = await client.post("/caption/plain", content=b"image-bytes")
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    inner, access = _lines(log_stream)
    assert inner["msg"] == "captioned" and inner["request_id"] == request_id
    assert access["logger"] == "repic.access"
    assert access["request_id"] == request_id
    assert {k: access[k] for k in ("method", "route", "status")} == {
        "method": "POST",
        "route": "/caption/{style}",
        "status": 200,
    }
    assert access["duration_ms"] >= 0
    assert request_id_var.get() is None


async def test_a_sane_caller_id_is_kept(log_stream: io.StringIO) -> None:
    async with _client() as client:
        response = await client.get("/sync", headers={"X-Request-ID": "trace.42_A-b"})
    assert response.headers["x-request-id"] == "trace.42_A-b"
    assert response.json() == {"request_id": "trace.42_A-b"}
    assert [line["request_id"] for line in _lines(log_stream)] == ["trace.42_A-b"] * 2


@pytest.mark.parametrize("bad", ["x" * 129, "a b", "id\u00e9", "<script>", ""])
async def test_an_unsafe_caller_id_is_replaced(bad: str, log_stream: io.StringIO) -> None:
    async with _client() as client:
        response = await client.get("/sync", headers={b"X-Request-ID": bad.encode("utf-8")})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert response.headers.get_list("x-request-id") == [response.headers["x-request-id"]]


async def test_access_line_holds_no_body_query_or_credentials(log_stream: io.StringIO) -> None:
    async with _client() as client:
        await client.post(
            f"/caption/plain?key={SECRET_KEY}",
            content=b"\xff\xd8JPEG-BYTES",
            headers={"Authorization": f"Bearer {SECRET_KEY}"},
        )
        await client.get("/no/such/path")
    text = log_stream.getvalue()
    for leak in (SECRET_KEY, "JPEG-BYTES", CAPTION, "/no/such/path", "?key"):
        assert leak not in text
    assert _lines(log_stream)[-1]["route"] == "unmatched"


async def test_failures_are_logged_as_errors(log_stream: io.StringIO) -> None:
    async with _client() as client:
        assert (await client.get("/boom")).status_code == 500
    access = [line for line in _lines(log_stream) if line["logger"] == "repic.access"]
    assert [(line["level"], line["status"], line["route"]) for line in access] == [
        ("ERROR", 500, "/boom")
    ]


def test_text_mode_routes_uvicorn_and_drops_its_access_log(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging(logging.WARNING, json=False, stream=stream)
    logging.getLogger("uvicorn.error").warning("shutting down")
    logging.getLogger("uvicorn.access").warning("GET /concepts/7 200")
    logging.getLogger("httpx").warning("retrying")
    logging.getLogger("repic.x").info("below the level")
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "WARNING uvicorn.error [-] shutting down",
        "WARNING httpx [-] retrying",
    ]


def test_json_logs_stay_one_object_per_line_with_progress_bars() -> None:
    """As deployed (stdout and stderr in one stream): a tqdm bar imported before logging is
    configured, a multi-line warning and a plain stderr print, between two log lines."""
    import subprocess

    program = """
import logging, sys, warnings
from tqdm import tqdm
from app.core.logs import configure_logging
configure_logging("INFO", json=True)
logging.getLogger("t").info("before")
for _ in tqdm(range(50), mininterval=0):
    pass
warnings.warn("two\\nlines")
print("plain text on stderr", file=sys.stderr)
logging.getLogger("t").info("after")
"""
    done = subprocess.run(
        [sys.executable, "-c", program],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=True,
        timeout=120,
    )
    lines = done.stdout.decode().split("\n")
    assert lines[-1] == ""
    records = [json.loads(line) for line in lines[:-1]]  # every line is one JSON object
    assert [r["msg"] for r in records if r["logger"] == "t"] == ["before", "after"]
    assert any("plain text on stderr" in r["msg"] for r in records)
