"""The small interfaces services are given instead of the runtime."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Offload(Protocol):
    """Runs blocking work (decode, embed, SQL, FAISS) in the bounded worker pool, off the loop
    (``Runtime.run``)."""

    async def __call__(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T: ...
