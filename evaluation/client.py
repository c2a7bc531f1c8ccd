"""The few calls of the public HTTP API that an evaluation run needs."""

from __future__ import annotations

import json
import mimetypes
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from evaluation.database import DatabaseConcept

ConceptId = int | str


class ServiceError(RuntimeError):
    """A call that failed; the message carries the server's problem ``detail`` when it sent one."""


class ServiceClient:
    """Calls the service with an API key over any ``httpx.Client`` (a real one or a test one)."""

    def __init__(self, http: httpx.Client, api_key: str) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {api_key}"}

    def ensure_concept(self, concept: DatabaseConcept) -> ConceptId:
        """Create ``concept`` with its reference images; an existing one of that name is reused
        as it is (409), so a resumed run does not duplicate concepts."""
        form = {"name": concept.name, "info": concept.info}
        if concept.category:
            form["category"] = concept.category
        if concept.display_name:
            form["display_name"] = concept.display_name
        files = [("images", _upload(image)) for image in concept.images]
        response = self._send("POST", "/concepts", data=form, files=files)
        if response.status_code == httpx.codes.CONFLICT:
            return self._find_concept(concept.name)
        return _concept_id(_json(self._checked(response, f"creating concept {concept.name!r}")))

    def caption(
        self,
        image: Path,
        *,
        top_k: int | None = None,
        concept_ids: Sequence[ConceptId] = (),
        instruction: str | None = None,
    ) -> dict[str, Any]:
        """``POST /caption`` for ``image``: retrieval with ``top_k``, or skip-retrieval with
        ``concept_ids`` (sent as a repeated form field, in the order given)."""
        form: dict[str, Any] = {}
        if top_k is not None:
            form["top_k"] = str(top_k)
        if instruction is not None:
            form["instruction"] = instruction
        if concept_ids:
            form["concept_ids"] = [str(i) for i in concept_ids]
        response = self._send("POST", "/caption", data=form, files=[("image", _upload(image))])
        body = _json(self._checked(response, f"captioning {image.name}"))
        if not isinstance(body.get("caption"), str):
            raise ServiceError(f"captioning {image.name}: the response has no caption")
        return body

    def _find_concept(self, name: str) -> ConceptId:
        response = self._send("GET", "/concepts", params={"name": name})
        body = _json(self._checked(response, f"looking up concept {name!r}"))
        for item in body.get("data", []):
            if isinstance(item, dict) and str(item.get("name", "")).casefold() == name.casefold():
                return _concept_id(item)
        raise ServiceError(f"concept {name!r} exists (409) but GET /concepts?name= did not find it")

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        # The service limits each user's request rate: a 429 says when to come back.
        for _ in range(_RATE_LIMIT_RETRIES):
            try:
                response = self._http.request(method, url, headers=self._headers, **kwargs)
            except httpx.HTTPError as exc:
                raise ServiceError(f"{method} {url}: cannot reach the service ({exc})") from exc
            retry_after = response.headers.get("retry-after", "")
            if response.status_code != 429 or not retry_after.isdigit():
                return response
            time.sleep(min(int(retry_after), _RETRY_AFTER_MAX_S))
        return response

    @staticmethod
    def _checked(response: httpx.Response, doing: str) -> httpx.Response:
        if response.is_success:
            return response
        raise ServiceError(f"{doing} failed: HTTP {response.status_code}: {_detail(response)}")


_RATE_LIMIT_RETRIES = 5
_RETRY_AFTER_MAX_S = 30


def _upload(path: Path) -> tuple[str, bytes, str]:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return path.name, path.read_bytes(), mime


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise ServiceError(f"{response.request.url}: the response is not JSON") from exc
    if not isinstance(body, dict):
        raise ServiceError(f"{response.request.url}: expected a JSON object")
    return body


def _concept_id(body: dict[str, Any]) -> ConceptId:
    concept_id = body.get("id")
    if not isinstance(concept_id, int | str) or isinstance(concept_id, bool):
        raise ServiceError(f"a concept in the response has no usable id: {body!r:.200}")
    return concept_id


def _detail(response: httpx.Response) -> str:
    """The problem+json ``detail`` (FastAPI's validation list is shown as JSON), else the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if detail is None:
        return json.dumps(body)[:500]
    return detail if isinstance(detail, str) else json.dumps(detail)[:500]
