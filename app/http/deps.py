"""Typed FastAPI dependencies: the runtime, the current user, the admin guard, the services.

Routes take services as ``Annotated`` dependencies, so a test can swap one through
``app.dependency_overrides[concept_service] = ...`` without touching the runtime. Each factory
builds its service with exactly the collaborators it uses (:mod:`app.core.wiring`).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.core import wiring
from app.core.runtime import Runtime
from app.http.problems import ProblemError
from app.services.captioning import CaptionService
from app.services.concepts import ConceptService
from app.services.history import HistoryService
from app.services.jobs import JobService
from app.services.retrieval import RetrievalService
from app.services.streaming import StreamingCaptionService
from app.services.user_data import UserDataService
from app.services.users import UserService

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key.")


# The runtime and the service factories are ``async def``: they only build objects, and FastAPI
# runs a plain ``def`` dependency on its thread pool, one hand-off each per request.


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def user_service(runtime: RuntimeDep) -> UserService:
    return wiring.users(runtime)


async def user_data_service(runtime: RuntimeDep) -> UserDataService:
    return wiring.user_data(runtime)


async def concept_service(runtime: RuntimeDep) -> ConceptService:
    return wiring.concepts(runtime)


async def retrieval_service(runtime: RuntimeDep) -> RetrievalService:
    return wiring.retrieval(runtime)


async def caption_service(runtime: RuntimeDep) -> CaptionService:
    return wiring.captions(runtime)


async def streaming_caption_service(runtime: RuntimeDep) -> StreamingCaptionService:
    return wiring.streaming_captions(runtime)


async def history_service(runtime: RuntimeDep) -> HistoryService:
    return wiring.history(runtime)


async def job_service(runtime: RuntimeDep) -> JobService:
    return wiring.jobs(runtime)


UserServiceDep = Annotated[UserService, Depends(user_service)]
UserDataServiceDep = Annotated[UserDataService, Depends(user_data_service)]
ConceptServiceDep = Annotated[ConceptService, Depends(concept_service)]
RetrievalServiceDep = Annotated[RetrievalService, Depends(retrieval_service)]
CaptionServiceDep = Annotated[CaptionService, Depends(caption_service)]
StreamingCaptionServiceDep = Annotated[StreamingCaptionService, Depends(streaming_caption_service)]
HistoryServiceDep = Annotated[HistoryService, Depends(history_service)]
JobServiceDep = Annotated[JobService, Depends(job_service)]


@dataclass(frozen=True)
class CurrentUserInfo:
    id: int
    name: str
    #: The user's opt-in to caption history, read with the key (no extra database round trip).
    keep_captions: bool = False


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        401, "unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="repic"'}
    )


def current_user(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> CurrentUserInfo:
    """Resolve ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` to a user (else 401)."""
    presented = credentials.credentials if credentials is not None else header_key
    if not presented:
        raise _unauthorized(
            "No API key was sent; send `Authorization: Bearer <key>` (create a key with "
            "`repic users create NAME`)."
        )
    user = UserService(runtime.sessions).authenticate(presented)
    if user is None:
        raise _unauthorized("The API key is unknown or revoked; ask for a new one.")
    runtime.rate_limiter.check(user.id)
    return CurrentUserInfo(id=user.id, name=user.name, keep_captions=user.keep_captions)


CurrentUser = Annotated[CurrentUserInfo, Depends(current_user)]


def require_admin(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Guard of `/admin/`: the bearer token must equal REPIC_ADMIN_TOKEN."""
    expected = runtime.settings.admin_token.get_secret_value().encode()
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise _unauthorized("The admin API needs `Authorization: Bearer <REPIC_ADMIN_TOKEN>`.")
