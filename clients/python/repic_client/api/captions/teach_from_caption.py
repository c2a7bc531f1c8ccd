from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.problem import Problem
from ...models.taught_public import TaughtPublic
from ...models.teach_request import TeachRequest
from ...types import Response


def _get_kwargs(
    caption_id: int,
    *,
    body: TeachRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/captions/{caption_id}/teach".format(
            caption_id=quote(str(caption_id), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Problem | TaughtPublic | None:
    if response.status_code == 201:
        response_201 = TaughtPublic.from_dict(response.json())

        return response_201

    if response.status_code == 400:
        response_400 = Problem.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = Problem.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = Problem.from_dict(response.json())

        return response_404

    if response.status_code == 409:
        response_409 = Problem.from_dict(response.json())

        return response_409

    if response.status_code == 413:
        response_413 = Problem.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = Problem.from_dict(response.json())

        return response_415

    if response.status_code == 422:
        response_422 = Problem.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = Problem.from_dict(response.json())

        return response_429

    if response.status_code == 500:
        response_500 = Problem.from_dict(response.json())

        return response_500

    if response.status_code == 503:
        response_503 = Problem.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[Problem | TaughtPublic]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    caption_id: int,
    *,
    client: AuthenticatedClient,
    body: TeachRequest,
) -> Response[Problem | TaughtPublic]:
    """Teach From Caption

     Add the kept photo, or the `box` crop of it, to a concept's reference photos: retrieval
    finds the concept in such photos at once (same intake and quotas as
    `POST /concepts/{id}/images`).

    Args:
        caption_id (int): A kept caption's id
        body (TeachRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | TaughtPublic]
    """

    kwargs = _get_kwargs(
        caption_id=caption_id,
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    caption_id: int,
    *,
    client: AuthenticatedClient,
    body: TeachRequest,
) -> Problem | TaughtPublic | None:
    """Teach From Caption

     Add the kept photo, or the `box` crop of it, to a concept's reference photos: retrieval
    finds the concept in such photos at once (same intake and quotas as
    `POST /concepts/{id}/images`).

    Args:
        caption_id (int): A kept caption's id
        body (TeachRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | TaughtPublic
    """

    return sync_detailed(
        caption_id=caption_id,
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    caption_id: int,
    *,
    client: AuthenticatedClient,
    body: TeachRequest,
) -> Response[Problem | TaughtPublic]:
    """Teach From Caption

     Add the kept photo, or the `box` crop of it, to a concept's reference photos: retrieval
    finds the concept in such photos at once (same intake and quotas as
    `POST /concepts/{id}/images`).

    Args:
        caption_id (int): A kept caption's id
        body (TeachRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Problem | TaughtPublic]
    """

    kwargs = _get_kwargs(
        caption_id=caption_id,
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    caption_id: int,
    *,
    client: AuthenticatedClient,
    body: TeachRequest,
) -> Problem | TaughtPublic | None:
    """Teach From Caption

     Add the kept photo, or the `box` crop of it, to a concept's reference photos: retrieval
    finds the concept in such photos at once (same intake and quotas as
    `POST /concepts/{id}/images`).

    Args:
        caption_id (int): A kept caption's id
        body (TeachRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Problem | TaughtPublic
    """

    return (
        await asyncio_detailed(
            caption_id=caption_id,
            client=client,
            body=body,
        )
    ).parsed
