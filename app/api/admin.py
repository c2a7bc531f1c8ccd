"""`/admin/`: users and API keys, guarded by REPIC_ADMIN_TOKEN."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status

from app.deps import RuntimeDep, require_admin
from app.problems import problem_responses
from app.schemas import (
    ApiKeyCreated,
    ApiKeyPublic,
    ApiKeysPublic,
    UserCreate,
    UserPublic,
    UsersPublic,
)
from app.services.users import IssuedKey, UserService

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def _created(issued: IssuedKey) -> ApiKeyCreated:
    return ApiKeyCreated(
        user=UserPublic.model_validate(issued.user), prefix=issued.prefix, key=issued.plaintext
    )


@router.post(
    "/users",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 409, 422),
)
async def create_user(runtime: RuntimeDep, body: UserCreate) -> ApiKeyCreated:
    """Create a user and its first API key (shown once)."""
    return _created(await runtime.run(UserService(runtime.sessions).create_user, body.name))


@router.get("/users", response_model=UsersPublic, responses=problem_responses(401))
async def list_users(runtime: RuntimeDep) -> UsersPublic:
    """All users."""
    users = await runtime.run(UserService(runtime.sessions).list_users)
    return UsersPublic(data=[UserPublic.model_validate(u) for u in users], count=len(users))


@router.post(
    "/users/{user_name}/keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 404),
)
async def create_key(runtime: RuntimeDep, user_name: str) -> ApiKeyCreated:
    """Another API key for a user (shown once)."""
    return _created(await runtime.run(UserService(runtime.sessions).create_key, user_name))


@router.get(
    "/users/{user_name}/keys",
    response_model=ApiKeysPublic,
    responses=problem_responses(401, 404),
)
async def list_keys(runtime: RuntimeDep, user_name: str) -> ApiKeysPublic:
    """A user's keys (prefixes only)."""
    keys = await runtime.run(UserService(runtime.sessions).keys_of, user_name)
    return ApiKeysPublic(data=[ApiKeyPublic.model_validate(k) for k in keys], count=len(keys))


@router.delete("/keys/{prefix}", response_model=ApiKeyPublic, responses=problem_responses(401, 404))
async def revoke_key(runtime: RuntimeDep, prefix: str) -> ApiKeyPublic:
    """Revoke a key by its prefix; it stops working at once."""
    key = await runtime.run(UserService(runtime.sessions).revoke_key, prefix)
    return ApiKeyPublic.model_validate(key)
