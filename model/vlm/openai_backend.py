"""A vLLM server (or any OpenAI-compatible one) as the VLM, through the official ``openai`` client.

Each call is one ``POST /v1/chat/completions`` with the RePIC messages: images travel as
``image_url`` parts holding base64 data URLs of the already normalised JPEG bytes, in prompt
order. vLLM-only fields ride in the body beside the OpenAI ones:

- ``repetition_penalty`` (the Qwen2.5-VL generation config's 1.05, as in the paper);
- ``cache_salt``, so one user's prefix-cache blocks never serve another user's request;
- per-image ``uuid`` (a sibling of ``image_url`` in the content part, where vLLM reads it): the
  image's sha256, so an image the server has already processed (a demo sent again) is not
  hashed and processed again.

Failures map to the errors of :mod:`model.vlm.base`: unreachable server, HTTP 5xx/429/404, a
refused API key and a generation the server aborted (it does so to requests in flight when it
shuts down) -> :class:`VLMUnavailable` (the server cannot serve us; readiness says why), the
deadline -> :class:`VLMTimeout`, any other 4xx (too many images, prompt too long) ->
:class:`VLMBadRequest`. Only connection errors are retried: a timed-out or failed generation
would most likely time out or fail again, and retrying it doubles the load on a server in trouble.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx2
from openai import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncOpenAI,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
)
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from model.lifecycle import ModelReadiness, ModelState
from model.prompt import ImagePart, RepicPrompt
from model.vlm.base import (
    Generation,
    VLMBadRequest,
    VLMError,
    VLMTimeout,
    VLMUnavailable,
)
from model.vlm.streaming import Delta

DEFAULT_REPETITION_PENALTY = 1.05
#: Readiness probes answer quickly or not at all.
_PROBE_TIMEOUT_S = 5.0
_CONNECT_TIMEOUT_S = 10.0
_FIRST_RETRY_DELAY_S = 0.25


def to_openai_messages(prompt: RepicPrompt) -> list[dict[str, Any]]:
    """The system message and the one interleaved user turn in OpenAI chat format.

    Image parts are ``{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,..."},
    "uuid": sha256}``; text parts are ``{"type": "text", "text": ...}``; the order is the
    prompt's (demonstrations first, query image and instruction last).
    """
    user: list[dict[str, Any]] = []
    for part in prompt.parts:
        if isinstance(part, ImagePart):
            data = base64.b64encode(part.image.data).decode("ascii")
            user.append(
                {
                    "type": "image_url",
                    "image_url": {"url": f"data:{part.image.mime};base64,{data}"},
                    "uuid": part.image.sha256,
                }
            )
        else:
            user.append({"type": "text", "text": part.text})
    return [
        {"role": "system", "content": prompt.system},
        {"role": "user", "content": user},
    ]


def server_root(base_url: str) -> str:
    """``http://host:8001/v1`` -> ``http://host:8001``, where vLLM answers ``GET /health``."""
    return base_url.rstrip("/").removesuffix("/v1")


class OpenAIBackend:
    """A :class:`~model.vlm.base.VLMBackend` calling an OpenAI-compatible server (vLLM).

    ``model`` is the name the server serves (``--served-model-name``), ``base_url`` its
    ``/v1`` URL and ``api_key`` its ``--api-key``. Decoding is greedy with
    ``repetition_penalty``. At most ``max_concurrency`` requests are in flight (the pool keeps as
    many connections alive); ``timeout_s`` bounds one call, waiting for a slot and retries
    included. A connection error is retried ``connect_retries`` times with doubling delays.

    Nothing is loaded in this process: the model's state is what the last probe of the server
    found (:meth:`areadiness`), and loading it means finding it served (:meth:`aload`).
    """

    #: The readiness probe asks the server every time; there is nothing more to load for it.
    probe_loads = False

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str,
        repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
        timeout_s: float = 120.0,
        max_concurrency: int = 16,
        connect_retries: int = 2,
    ) -> None:
        if repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be positive, got {repetition_penalty}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if connect_retries < 0:
            raise ValueError(f"connect_retries must be 0 or more, got {connect_retries}")
        self.model_name = model
        self._base_url = base_url
        self._root = server_root(base_url)
        self._repetition_penalty = repetition_penalty
        self._timeout_s = timeout_s
        self._connect_retries = connect_retries
        self._state = ModelState.UNLOADED
        self._slots = asyncio.Semaphore(max_concurrency)
        self._http = httpx2.AsyncClient(
            limits=httpx2.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            timeout=httpx2.Timeout(timeout_s, connect=min(timeout_s, _CONNECT_TIMEOUT_S)),
        )
        # The client's own retries would also repeat timeouts and 5xx answers; ours do not.
        self._client = AsyncOpenAI(
            base_url=base_url, api_key=api_key, max_retries=0, http_client=self._http
        )

    async def generate(
        self, prompt: RepicPrompt, *, max_tokens: int, cache_salt: str
    ) -> Generation:
        """Caption ``prompt`` greedily with at most ``max_tokens`` new tokens.

        ``cache_salt`` is sent as its sha256 (any string then meets vLLM's salt rules and the
        server's logs never see it); an empty salt sends none, sharing the cache with all.
        The same digest goes in ``X-User-ID`` and ``X-Session-ID``, the keys vLLM's router
        hashes (``--policy consistent_hash``) so one user's prompts meet one replica's cache.
        """
        if max_tokens < 1:
            raise VLMBadRequest(f"max_tokens must be at least 1, got {max_tokens}")
        extra_body: dict[str, Any] = {"repetition_penalty": self._repetition_penalty}
        headers: dict[str, str] = {}
        if cache_salt:
            opaque = hashlib.sha256(cache_salt.encode()).hexdigest()
            extra_body["cache_salt"] = opaque
            headers = {"X-User-ID": opaque, "X-Session-ID": opaque}
        messages = cast(list[ChatCompletionMessageParam], to_openai_messages(prompt))
        try:
            async with asyncio.timeout(self._timeout_s), self._slots:
                completion = await self._create_retrying(messages, max_tokens, extra_body, headers)
        except (TimeoutError, APITimeoutError) as exc:
            raise VLMTimeout(
                f"{self.model_name} at {self._base_url} gave no caption within "
                f"{self._timeout_s} s; raise the timeout, lower max_tokens or add capacity."
            ) from exc
        except APIConnectionError as exc:
            raise VLMUnavailable(
                f"Cannot reach the vLLM server at {self._base_url} "
                f"({1 + self._connect_retries} attempts: {exc.__cause__ or exc}); check that "
                "it runs and that the base URL is right."
            ) from exc
        except APIStatusError as exc:
            raise self._status_error(exc) from exc
        return self._generation(completion)

    async def stream(
        self, prompt: RepicPrompt, *, max_tokens: int, cache_salt: str
    ) -> AsyncIterator[Delta | Generation]:
        """Like :meth:`generate`, streamed: each text delta vLLM sends, then the generation.

        Closing the iterator early closes the HTTP response, and vLLM aborts a request whose
        client went away, so an abandoned caption stops using the GPU. The deadline covers the
        whole stream; connection errors are not retried (a stream cannot be resumed).
        """
        if max_tokens < 1:
            raise VLMBadRequest(f"max_tokens must be at least 1, got {max_tokens}")
        extra_body: dict[str, Any] = {"repetition_penalty": self._repetition_penalty}
        if cache_salt:
            extra_body["cache_salt"] = hashlib.sha256(cache_salt.encode()).hexdigest()
        messages = cast(list[ChatCompletionMessageParam], to_openai_messages(prompt))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        parts: list[str] = []
        model = self.model_name
        usage = None
        async with self._slots:
            try:
                response = await self._client.chat.completions.create(
                    model=self.model_name,
                    messages=messages,
                    max_completion_tokens=max_tokens,
                    temperature=0.0,
                    extra_body=extra_body,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async with response:
                    async for chunk in response:
                        model = chunk.model or model
                        usage = chunk.usage or usage
                        for choice in chunk.choices:
                            if cast(str | None, choice.finish_reason) == "abort":
                                raise VLMUnavailable(
                                    f"vLLM at {self._base_url} aborted the generation (it is "
                                    "shutting down or restarting); try again."
                                )
                            if choice.delta.content:
                                parts.append(choice.delta.content)
                                yield Delta(choice.delta.content)
                        if loop.time() > deadline:
                            raise TimeoutError
            except (TimeoutError, APITimeoutError) as exc:
                raise VLMTimeout(
                    f"{self.model_name} at {self._base_url} did not finish within "
                    f"{self._timeout_s} s; raise the timeout or lower max_tokens."
                ) from exc
            except APIConnectionError as exc:
                raise VLMUnavailable(
                    f"Cannot reach the vLLM server at {self._base_url} "
                    f"({exc.__cause__ or exc}); check that it runs."
                ) from exc
            except APIStatusError as exc:
                raise self._status_error(exc) from exc
        yield Generation(
            text="".join(parts),
            model=model,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
        )

    @property
    def state(self) -> ModelState:
        """Ready or failed as the last probe found the server; unloaded before any probe."""
        return self._state

    async def aload(self) -> None:
        """Probe the server; raises :class:`VLMUnavailable` (saying why) unless it serves us."""
        found = await self.areadiness()
        if not found.ready:
            raise VLMUnavailable(found.detail)

    async def aunload(self) -> None:
        """Nothing is held here; the next use probes or calls the server again."""
        self._state = ModelState.UNLOADED

    async def areadiness(self) -> ModelReadiness:
        """Ready when ``GET /health`` answers 200 and ``/v1/models`` lists our model name."""
        found = await self._probe()
        self._state = found.state
        return found

    async def _probe(self) -> ModelReadiness:
        failed = ModelState.FAILED
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT_S):
                health = await self._http.get(f"{self._root}/health")
                if health.status_code != 200:
                    return ModelReadiness(
                        failed,
                        f"vLLM at {self._root} is not healthy "
                        f"(GET /health answered {health.status_code})",
                    )
                page = await self._client.models.list()
        except (TimeoutError, httpx2.HTTPError, APIConnectionError) as exc:
            return ModelReadiness(
                failed,
                f"cannot reach vLLM at {self._root} ({type(exc).__name__}: {exc})",
            )
        except APIStatusError as exc:
            return ModelReadiness(failed, str(self._status_error(exc)))
        served = [model.id for model in page.data]
        if self.model_name not in served:
            return ModelReadiness(
                failed,
                f"vLLM at {self._root} serves {served}, not {self.model_name!r}; set the "
                "model name to the server's --served-model-name",
            )
        return ModelReadiness(ModelState.READY, f"vLLM at {self._root} serves {self.model_name!r}")

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.close()

    async def _create_retrying(
        self,
        messages: list[ChatCompletionMessageParam],
        max_tokens: int,
        extra_body: dict[str, Any],
        headers: dict[str, str],
    ) -> ChatCompletion:
        delay = _FIRST_RETRY_DELAY_S
        attempt = 0
        while True:
            try:
                return await self._client.chat.completions.create(
                    model=self.model_name,
                    # The messages travel in extra_body, which replaces this empty list in the
                    # JSON body: the client would otherwise walk every part of them against its
                    # type hints on each call (milliseconds of CPU per caption, see BENCHMARKS.md),
                    # and they are plain JSON already (to_openai_messages).
                    messages=[],
                    max_completion_tokens=max_tokens,
                    temperature=0.0,
                    extra_body={**extra_body, "messages": messages},
                    extra_headers=headers,
                )
            except APITimeoutError:
                raise
            except APIConnectionError:
                if attempt == self._connect_retries:
                    raise
            await asyncio.sleep(delay)
            delay *= 2
            attempt += 1

    def _generation(self, completion: ChatCompletion) -> Generation:
        if not completion.choices:
            raise VLMBadRequest(f"{self.model_name} answered without a choice")
        choice = completion.choices[0]
        # vLLM's own finish reason (not an OpenAI one): the server cut the generation short,
        # as it does for requests in flight when it shuts down. The text is a fragment.
        if cast(str, choice.finish_reason) == "abort":
            raise VLMUnavailable(
                f"vLLM at {self._base_url} aborted the generation (it is shutting down or "
                "restarting); try again."
            )
        usage = completion.usage
        return Generation(
            text=choice.message.content or "",
            model=completion.model,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
        )

    def _status_error(self, exc: APIStatusError) -> VLMError:
        where = f"vLLM at {self._base_url}"
        if isinstance(exc, AuthenticationError):
            return VLMUnavailable(
                f"{where} rejected the API key; set it to the key the server was started with "
                "(--api-key)."
            )
        if isinstance(exc, NotFoundError):
            return VLMUnavailable(
                f"{where} does not serve {self.model_name!r} ({exc.message}); set the model name "
                "to the server's --served-model-name."
            )
        if isinstance(exc, RateLimitError) or exc.status_code >= 500:
            return VLMUnavailable(f"{where} failed with HTTP {exc.status_code}: {exc.message}")
        return VLMBadRequest(f"{where} refused the request (HTTP {exc.status_code}): {exc.message}")
