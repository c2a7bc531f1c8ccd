"""The OpenAPI document SDK generators read, derived from the routes in one pass.

FastAPI's raw document is close but not true enough for generated clients to work unedited:
file fields lack ``format: binary``, errors are declared under the wrong media type, the
statuses routes share (401, 404, 413, 422, 500, 503) are missing, form bodies get
``Body_<op>`` names. :func:`refine` fixes all of that from the routes themselves, so a new
route needs nothing here; ``make openapi clients`` then regenerates the committed files.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from app.http.problems import PROBLEM_MEDIA_TYPE, Problem, status_title

JSON = dict[str, Any]

SERVERS = [
    {
        "url": "http://127.0.0.1:8000",
        "description": "`make serve` or `make demo`; point the SDK at your deployment instead",
    }
]
LICENSE = {"name": "Apache-2.0", "identifier": "Apache-2.0"}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_BINARY_TYPES = ("image/", "application/octet-stream", "application/zip")


def operation_id(route: APIRoute) -> str:
    """The route's function name (`create_concept`): unique across the app, tags group them."""
    return route.name


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`refine`'s document at ``/openapi.json`` (built once, on first request)."""

    def build() -> JSON:
        if app.openapi_schema is None:
            raw = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                servers=SERVERS,
                license_info=LICENSE,
                tags=tag_descriptions(app.routes),
            )
            app.openapi_schema = refine(raw)
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def tag_descriptions(routes: Sequence[BaseRoute]) -> list[JSON]:
    """One entry per tag, described by the first line of its router module's docstring."""
    tags: dict[str, str] = {}
    # iter_route_contexts is how get_openapi itself walks included routers and their tags.
    for route in iter_route_contexts(routes):
        if route.endpoint is None or not getattr(route, "include_in_schema", False):
            continue
        for tag in getattr(route, "tags", None) or []:
            doc = sys.modules[route.endpoint.__module__].__doc__ or str(tag)
            tags.setdefault(str(tag), doc.strip().splitlines()[0])
    return [{"name": name, "description": text} for name, text in tags.items()]


def form_schema_name(op_id: str) -> str:
    """`create_concept` -> `ConceptCreateForm`: the resource first, then the verb."""
    verb, *rest = op_id.split("_")
    return "".join(word.title() for word in rest) + verb.title() + "Form"


def refine(raw: JSON) -> JSON:
    """Return a copy of FastAPI's document with the fixes listed in the module docstring."""
    spec = copy.deepcopy(raw)
    schemas: JSON = spec.setdefault("components", {}).setdefault("schemas", {})
    renames: dict[str, str] = {}
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            _refine_operation(operation, renames)
    for old, new in renames.items():
        if old in schemas:
            schema = schemas.pop(old)
            schema["title"] = new
            schemas[new] = schema
    prefix = "#/components/schemas/"
    _rename_refs(spec, {prefix + old: prefix + new for old, new in renames.items()})
    schemas = spec["components"]["schemas"]
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas.update(_model_schemas())
    spec["components"]["schemas"] = dict(sorted(schemas.items()))
    _mark_binary(spec)
    return spec


def _refine_operation(operation: JSON, renames: dict[str, str]) -> None:
    op_id = operation["operationId"]
    secured = bool(operation.get("security"))
    operation.setdefault("security", [])
    responses: JSON = operation["responses"]
    extra = [500]
    if secured and "health" in operation.get("tags", []):
        # Probes answer anyone; a token only adds detail (readyz) or is an operator's choice
        # (metrics). `{}` first: no credentials is a valid way to call them.
        operation["security"] = [{}, *operation["security"]]
    elif secured:
        extra += [401, 503]
    parameters = operation.get("parameters", [])
    if parameters or "requestBody" in operation:
        extra.append(422)
    if any(p.get("in") == "path" for p in parameters):
        extra.append(404)  # the addressed object may not exist (or not be the caller's)
    if "requestBody" in operation:
        extra.append(413)
        body_ref = _body_ref(operation["requestBody"])
        if body_ref and body_ref.startswith("Body_"):
            renames[body_ref] = form_schema_name(op_id)
    for code in extra:
        responses.setdefault(str(code), {"description": status_title(code)})
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400 and _is_problem(response):
            response["description"] = status_title(int(status))
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": dict(_PROBLEM_REF)}}
        for media_type, entry in response.get("content", {}).items():
            if not entry.get("schema"):
                binary = media_type.startswith(_BINARY_TYPES)
                entry["schema"] = {"type": "string", **({"format": "binary"} if binary else {})}
    operation["responses"] = dict(sorted(responses.items()))


def _body_ref(body: JSON) -> str | None:
    for entry in body.get("content", {}).values():
        ref = entry.get("schema", {}).get("$ref", "")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return ref.rsplit("/", 1)[1]
    return None


def _is_problem(response: JSON) -> bool:
    """True unless the route declared a body of its own (e.g. `/readyz`'s 503 `Readiness`)."""
    content: JSON = response.get("content", {})
    for media_type, entry in content.items():
        if media_type == PROBLEM_MEDIA_TYPE:
            continue
        ref = entry.get("schema", {}).get("$ref", "")
        if not ref.endswith(("/Problem", *(f"/{n}" for n in _FASTAPI_VALIDATION_SCHEMAS))):
            return False
    return True


def _model_schemas() -> JSON:
    """`Problem` and `FieldError`, always present whether or not a route names them."""
    doc = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    defs: JSON = doc.pop("$defs", {})
    return {"Problem": doc, **defs}


def _rename_refs(node: Any, mapping: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in mapping:
            node["$ref"] = mapping[ref]
        for value in node.values():
            _rename_refs(value, mapping)
    elif isinstance(node, list):
        for value in node:
            _rename_refs(value, mapping)


def _mark_binary(node: Any) -> None:
    """`format: binary` next to every ``contentMediaType``: generators send such a field as a
    file part with a filename; without it they send text and the server answers 422."""
    if isinstance(node, dict):
        if node.get("type") == "string" and "contentMediaType" in node:
            node.setdefault("format", "binary")
        for value in node.values():
            _mark_binary(value)
    elif isinstance(node, list):
        for value in node:
            _mark_binary(value)
