from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.caption_record_public import CaptionRecordPublic
from ...models.problem import Problem
from ...types import Response


def _get_kwargs(
    caption_id: int,
) -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/captions/{caption_id}".format(
            caption_id=quote(str(caption_id), safe=""),
        ),
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> CaptionRecordPublic | Problem | None:
    if response.status_code == 200:
        response_200 = CaptionRecordPublic.from_dict(response.json())

        return response_200

    if response.status_code == 401:
        response_401 = Problem.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = Problem.from_dict(response.json())

        return response_404

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
) -> Response[CaptionRecordPublic | Problem]:
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
) -> Response[CaptionRecordPublic | Problem]:
    """Get Caption

     One kept caption with its correction and the photos taught from it.

    Args:
        caption_id (int): A kept caption's id

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[CaptionRecordPublic | Problem]
    """

    kwargs = _get_kwargs(
        caption_id=caption_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    caption_id: int,
    *,
    client: AuthenticatedClient,
) -> CaptionRecordPublic | Problem | None:
    """Get Caption

     One kept caption with its correction and the photos taught from it.

    Args:
        caption_id (int): A kept caption's id

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        CaptionRecordPublic | Problem
    """

    return sync_detailed(
        caption_id=caption_id,
        client=client,
    ).parsed


async def asyncio_detailed(
    caption_id: int,
    *,
    client: AuthenticatedClient,
) -> Response[CaptionRecordPublic | Problem]:
    """Get Caption

     One kept caption with its correction and the photos taught from it.

    Args:
        caption_id (int): A kept caption's id

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[CaptionRecordPublic | Problem]
    """

    kwargs = _get_kwargs(
        caption_id=caption_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    caption_id: int,
    *,
    client: AuthenticatedClient,
) -> CaptionRecordPublic | Problem | None:
    """Get Caption

     One kept caption with its correction and the photos taught from it.

    Args:
        caption_id (int): A kept caption's id

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        CaptionRecordPublic | Problem
    """

    return (
        await asyncio_detailed(
            caption_id=caption_id,
            client=client,
        )
    ).parsed
