"""Domain errors: services speak no HTTP, one table maps them to problems, services are
dependencies a test can replace."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from fastapi import FastAPI

from app.http.deps import concept_service
from app.http.problems import TYPE_PREFIX, as_problem, problem_json
from app.services import errors
from tests.helpers.api import UserClient

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.NotFound, 404),
        (errors.Conflict, 409),
        (errors.InvalidInput, 422),
        (errors.UnsupportedMedia, 415),
        (errors.TooLarge, 413),
        (errors.TooMany, 429),
        (errors.Unavailable, 503),
        (errors.NotSupported, 501),
        (errors.UpstreamRefused, 502),
        (errors.UpstreamTimeout, 504),
        (errors.Failed, 500),
    ],
)
def test_each_domain_error_has_one_status(error: type[errors.DomainError], status: int) -> None:
    problem = as_problem(error("some-kind", "what to do"))
    assert (problem.status, problem.kind, problem.detail) == (status, "some-kind", "what to do")
    assert problem.headers == {}


def test_retry_after_becomes_the_header_and_fields_stay() -> None:
    fields = [{"loc": ["body", "x"], "msg": "bad", "type": "bad"}]
    problem = as_problem(errors.Unavailable("k", "later", retry_after_s=30, errors=fields))
    assert problem.headers == {"Retry-After": "30"}
    assert problem.errors == fields


def test_problem_json_is_the_document_a_job_item_stores() -> None:
    body = json.loads(problem_json(errors.not_found("Concept 7")))
    assert body == {
        "type": f"{TYPE_PREFIX}not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "Concept 7 does not exist (or is not yours).",
    }


def _imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {f"{node.module}.{a.name}" for a in node.names}
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


@pytest.mark.parametrize(
    "path", sorted((ROOT / "app" / "services").glob("*.py")), ids=lambda p: p.name
)
def test_services_raise_no_problems_and_build_no_responses(path: Path) -> None:
    imported = _imported_names(path)
    assert not {n for n in imported if n.split(".")[0] in ("fastapi", "starlette")}
    assert "app.http.problems.ProblemError" not in imported
    assert "app.http.errors.ProblemError" not in imported
    assert not {n for n in imported if n.startswith("app.api.schemas.") and n.endswith("Public")}


def test_model_carries_no_http_status() -> None:
    for path in (ROOT / "model").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                assigned = {
                    t.id
                    for stmt in node.body
                    if isinstance(stmt, ast.Assign)
                    for t in stmt.targets
                    if isinstance(t, ast.Name)
                }
                assert "status" not in assigned, f"{path.name}: {node.name}.status"


async def test_a_service_is_a_dependency_a_test_can_replace(
    app: FastAPI, alice: UserClient
) -> None:
    class DiskFull:
        """Stands in for :class:`ConceptService` on `GET /concepts`."""

        def page(self, *_: object, **__: object) -> tuple[list[object], int]:
            raise errors.Unavailable("storage-full", "The disk is full.", retry_after_s=300)

    app.dependency_overrides[concept_service] = DiskFull
    try:
        resp = await alice.client.get("/concepts")
    finally:
        app.dependency_overrides.clear()
    assert resp.status_code == 503
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.headers["retry-after"] == "300"
    assert resp.json()["type"] == f"{TYPE_PREFIX}storage-full"
    assert (await alice.client.get("/concepts")).status_code == 200
