"""The OpenAPI document tells the truth, is committed, lints clean; the docs work offline."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from app.cli.dev import openapi_document
from app.core.settings import Settings
from app.http.problems import PROBLEM_MEDIA_TYPE
from app.main import create_app
from tests.helpers.api import UserClient
from tests.helpers.node_tools import node_tool

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "clients" / "openapi.json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
HEALTH = {"/healthz", "/readyz", "/metrics"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(openapi_document())
    return loaded


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op) for path, item in spec["paths"].items() for method, op in item.items()
    ]


def test_committed_spec_is_current(spec: dict[str, Any]) -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == spec, "the app's spec changed: run `make openapi clients` and commit"


def test_spec_validates_and_lints_clean() -> None:
    validate(json.loads(COMMITTED.read_text(encoding="utf-8")))
    lint = subprocess.run(
        [
            node_tool("redocly"),
            "lint",
            "--config",
            "redocly.yaml",
            "--format",
            "json",
            "openapi.json",
        ],
        cwd=COMMITTED.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    report = json.loads(lint.stdout)
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, report["problems"]


def test_operation_ids_are_route_names(spec: dict[str, Any]) -> None:
    ids = {op["operationId"] for _, _, op in operations(spec)}
    assert {"create_concept", "list_concepts", "caption", "retrieve", "list_keys"} <= ids
    assert len(ids) == len(operations(spec))
    assert all(re.fullmatch(r"[a-z][a-z_]*", i) for i in ids)


def test_file_fields_are_binary_and_forms_are_named(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert not [name for name in schemas if name.startswith("Body_")]
    assert schemas["ConceptCreateForm"]["properties"]["images"]["items"] == {
        "type": "string",
        "format": "binary",
        "contentMediaType": "application/octet-stream",
    }
    for form in ("CaptionForm", "RetrieveForm"):
        assert schemas[form]["properties"]["image"]["format"] == "binary"
    body = spec["paths"]["/caption"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"] == {"$ref": "#/components/schemas/CaptionForm"}


def test_every_error_is_a_problem_document(spec: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    errors = spec["components"]["schemas"]["Problem"]["properties"]["errors"]
    assert errors["anyOf"][0]["items"] == {"$ref": "#/components/schemas/FieldError"}
    for path, method, op in operations(spec):
        for status, response in op["responses"].items():
            if int(status) < 400 or (path, status) == ("/readyz", "503"):
                continue
            assert response["content"] == {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}, (
                path,
                method,
                status,
            )


def test_statuses_and_security_are_declared(spec: dict[str, Any]) -> None:
    assert spec["servers"][0]["url"].startswith("http")
    for path, method, op in operations(spec):
        codes = set(op["responses"])
        assert "500" in codes
        if path in HEALTH:
            # Anyone may call a probe; some accept an optional token.
            assert op["security"] in ([], [{}, {"HTTPBearer": []}]), path
            continue
        assert op["security"], (path, method)
        assert {"401", "503"} <= codes, (path, method)
        if op.get("parameters") or "requestBody" in op:
            assert "422" in codes, (path, method)
        if "{" in path:
            assert "404" in codes, (path, method)
    assert "413" in spec["paths"]["/concepts"]["post"]["responses"]
    assert "404" in spec["paths"]["/caption"]["post"]["responses"]


def test_binary_responses_and_list_envelopes(spec: dict[str, Any]) -> None:
    image = spec["paths"]["/concepts/{concept_id}/images/{image_id}"]["get"]["responses"]["200"]
    assert image["content"]["image/jpeg"]["schema"] == {"type": "string", "format": "binary"}
    for path in ("/concepts", "/admin/users", "/admin/users/{user_name}/keys"):
        ok = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        name = ok["schema"]["$ref"].rsplit("/", 1)[1]
        assert set(spec["components"]["schemas"][name]["properties"]) == {"data", "count"}


def test_path_ids_are_bounded_to_64_bits(spec: dict[str, Any]) -> None:
    params = spec["paths"]["/concepts/{concept_id}/images/{image_id}"]["get"]["parameters"]
    ids = [p for p in params if p["in"] == "path"]
    assert len(ids) == 2
    for param in ids:
        assert param["schema"]["minimum"] == 1
        assert param["schema"]["maximum"] == 2**63 - 1


@pytest.mark.parametrize("concept_id", ["1180591620717411303424", str(2**63), "0"])
async def test_out_of_range_ids_are_422_problems(alice: UserClient, concept_id: str) -> None:
    resp = await alice.client.get(f"/concepts/{concept_id}")
    assert resp.status_code == 422
    assert resp.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert resp.json()["errors"][0]["loc"] == ["path", "concept_id"]


async def test_largest_id_is_a_404_problem(alice: UserClient) -> None:
    resp = await alice.client.get(f"/concepts/{2**63 - 1}/images/{2**63 - 1}")
    assert resp.status_code == 404
    assert resp.json()["type"] == "urn:repic:problem:not-found"


async def test_docs_load_their_assets_from_the_app(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for page in ("/docs", "/redoc"):
            resp = await client.get(page)
            assert "script-src 'self';" in resp.headers["content-security-policy"]
            scripts = re.findall(r"<script([^>]*)>", resp.text)
            sources = [re.fullmatch(r' src="(/[^"]+)"', attrs) for attrs in scripts]
            assert scripts and all(sources), scripts  # no inline script, nothing off-site
            links = re.findall(r'<link[^>]+href="([^"]+)"', resp.text)
            assert "//" not in resp.text.replace("<!doctype", "")
            for asset in [m.group(1) for m in sources if m] + links:
                loaded = await client.get(asset)
                assert loaded.status_code == 200 and len(loaded.content) > 100, asset
        assert "SwaggerUIBundle" in (await client.get("/docs-assets/swagger-ui-bundle.js")).text
        init = (await client.get("/docs/swagger-init.js")).text
        assert '"url": "/openapi.json"' in init
