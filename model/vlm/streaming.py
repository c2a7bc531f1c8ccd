"""Streaming generation: text deltas as the model writes them, then the whole generation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from model.prompt import RepicPrompt
from model.vlm.base import Generation


@dataclass(frozen=True)
class Delta:
    """A piece of text the model just wrote."""

    text: str


@runtime_checkable
class StreamingVLM(Protocol):
    """A backend that can stream: :class:`Delta` items, then exactly one :class:`Generation`.

    Closing the iterator early (the caller went away) stops the generation at its source.
    """

    def stream(
        self, prompt: RepicPrompt, *, max_tokens: int, cache_salt: str
    ) -> AsyncIterator[Delta | Generation]: ...
