"""Typed FastAPI dependencies: the runtime, the current user, the admin guard."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.problems import ProblemError
from app.runtime import Runtime
from app.services.users import UserService

bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key.")


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain ``def`` dependency on its thread pool, one hand-off per request.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True)
class CurrentUserInfo:
    id: int
    name: str


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
    return CurrentUserInfo(id=user.id, name=user.name)


CurrentUser = Annotated[CurrentUserInfo, Depends(current_user)]


def require_admin(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Guard of `/admin/`: the bearer token must equal REPIC_ADMIN_TOKEN."""
    expected = runtime.settings.admin_token.get_secret_value().encode()
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise _unauthorized("The admin API needs `Authorization: Bearer <REPIC_ADMIN_TOKEN>`.")
