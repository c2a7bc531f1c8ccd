"""`/admin/`: users and API keys, guarded by REPIC_ADMIN_TOKEN."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from app.api.schemas import (
    USER_NAME_PATTERN,
    ApiKeyCreated,
    ApiKeyPublic,
    ApiKeysPublic,
    UserCreate,
    UserDeleted,
    UserPublic,
    UsersPublic,
)
from app.http.deps import RuntimeDep, UserDataServiceDep, UserServiceDep, require_admin
from app.http.problems import problem_responses
from app.services.users import IssuedKey

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

UserName = Annotated[str, Path(min_length=1, max_length=64, pattern=USER_NAME_PATTERN)]
KeyPrefix = Annotated[str, Path(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9]+$")]


def _created(issued: IssuedKey) -> ApiKeyCreated:
    return ApiKeyCreated(
        user=UserPublic.model_validate(issued.user), prefix=issued.prefix, key=issued.plaintext
    )


@router.post(
    "/users",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 409, 422),
)
async def create_user(
    runtime: RuntimeDep, users: UserServiceDep, body: UserCreate
) -> ApiKeyCreated:
    """Create a user and its first API key (shown once)."""
    return _created(await runtime.run(users.create_user, body.name))


@router.get("/users", response_model=UsersPublic, responses=problem_responses(401))
async def list_users(runtime: RuntimeDep, service: UserServiceDep) -> UsersPublic:
    """All users."""
    users = await runtime.run(service.list_users)
    return UsersPublic(data=[UserPublic.model_validate(u) for u in users], count=len(users))


@router.post(
    "/users/{user_name}/keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 404, 409, 422),
)
async def create_key(
    runtime: RuntimeDep, users: UserServiceDep, user_name: UserName
) -> ApiKeyCreated:
    """Another API key for a user (shown once); at most REPIC_QUOTA__API_KEYS active ones."""
    return _created(await runtime.run(users.create_key, user_name))


@router.get(
    "/users/{user_name}/keys",
    response_model=ApiKeysPublic,
    responses=problem_responses(401, 404, 422),
)
async def list_keys(
    runtime: RuntimeDep, users: UserServiceDep, user_name: UserName
) -> ApiKeysPublic:
    """A user's keys (prefixes only)."""
    keys = await runtime.run(users.keys_of, user_name)
    return ApiKeysPublic(data=[ApiKeyPublic.model_validate(k) for k in keys], count=len(keys))


@router.delete(
    "/keys/{prefix}", response_model=ApiKeyPublic, responses=problem_responses(401, 404, 422)
)
async def revoke_key(runtime: RuntimeDep, users: UserServiceDep, prefix: KeyPrefix) -> ApiKeyPublic:
    """Revoke a key by its prefix; it stops working at once."""
    key = await runtime.run(users.revoke_key, prefix)
    return ApiKeyPublic.model_validate(key)


@router.delete(
    "/users/{user_name}",
    response_model=UserDeleted,
    responses=problem_responses(401, 404, 422),
)
async def delete_user(
    runtime: RuntimeDep, user_data: UserDataServiceDep, user_name: UserName
) -> UserDeleted:
    """Delete a user with all their keys, concepts, photos, vectors and index."""
    deleted = await runtime.run(user_data.delete, user_name)
    return UserDeleted(name=deleted.name, concepts=deleted.concepts, photos=deleted.photos)


@router.get(
    "/users/{user_name}/export",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "concepts.json and photos/"},
        **problem_responses(401, 404, 422, 503),
    },
)
async def export_user(
    runtime: RuntimeDep, user_data: UserDataServiceDep, user_name: UserName
) -> Response:
    """A zip of the user's data: `concepts.json` (names, info, categories) and the photos."""
    data = await runtime.run(user_data.export, user_name)
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="repic-{user_name}.zip"',
            "Cache-Control": "no-store",
        },
    )
