"""The protocol every VLM backend implements, and the errors the API maps to 503/504."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from model.lifecycle import ManagedModel, ModelUnavailable
from model.prompt import RepicPrompt


class VLMError(Exception):
    """Base of backend failures; ``kind`` labels the metrics counter."""

    kind = "error"


class VLMUnavailable(VLMError, ModelUnavailable):
    """Backend unreachable or not loadable (HTTP 503 with Retry-After)."""

    kind = "unavailable"


class VLMTimeout(VLMError):
    """Backend did not answer in time (HTTP 504)."""

    kind = "timeout"


class VLMBadRequest(VLMError):
    """Backend refused the request as malformed (a bug or a misconfiguration: HTTP 502)."""

    kind = "bad_request"


@dataclass(frozen=True)
class Generation:
    text: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class VLMBackend(ManagedModel, Protocol):
    """Turns a :class:`RepicPrompt` into text; loads, reports and unloads like every model.

    ``cache_salt`` isolates one user's prefix-cache entries from another's (vLLM); backends
    without a shared cache ignore it.
    """

    model_name: str

    async def generate(
        self, prompt: RepicPrompt, *, max_tokens: int, cache_salt: str
    ) -> Generation: ...

    async def aclose(self) -> None: ...
