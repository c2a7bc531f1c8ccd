"""A vLLM server (or any OpenAI-compatible one) as the VLM.

A caption is one ``POST /v1/chat/completions`` with the RePIC messages, sent as one JSON body on
the pooled HTTP client and read back as plain JSON: the official ``openai`` client (used for
streaming and the readiness probe) costs milliseconds of CPU per call in its request options,
type-hint walks and response models, which one service process pays for every caption
(BENCHMARKS.md, service CPU). Images travel as
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
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx2
from openai import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncOpenAI,
)
from openai.types.chat import ChatCompletionMessageParam

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
        self._completions_url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
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
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": to_openai_messages(prompt),
            "max_completion_tokens": max_tokens,
            "temperature": 0.0,
            "repetition_penalty": self._repetition_penalty,
        }
        headers = self._headers
        if cache_salt:
            opaque = hashlib.sha256(cache_salt.encode()).hexdigest()
            body["cache_salt"] = opaque
            headers = {**headers, "X-User-ID": opaque, "X-Session-ID": opaque}
        content = json.dumps(body).encode()
        try:
            async with asyncio.timeout(self._timeout_s), self._slots:
                response = await self._post_retrying(content, headers)
        except (TimeoutError, httpx2.TimeoutException) as exc:
            raise VLMTimeout(
                f"{self.model_name} at {self._base_url} gave no caption within "
                f"{self._timeout_s} s; raise the timeout, lower max_tokens or add capacity."
            ) from exc
        except httpx2.HTTPError as exc:
            raise VLMUnavailable(
                f"Cannot reach the vLLM server at {self._base_url} "
                f"({1 + self._connect_retries} attempts: {str(exc) or type(exc).__name__}); "
                "check that "
                "it runs and that the base URL is right."
            ) from exc
        if response.status_code >= 400:
            raise self._status_error(response.status_code, _error_message(response))
        return self._generation(response)

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
                raise self._status_error(exc.status_code, exc.message) from exc
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
            return ModelReadiness(failed, str(self._status_error(exc.status_code, exc.message)))
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

    async def _post_retrying(self, content: bytes, headers: dict[str, str]) -> httpx2.Response:
        """POST the chat completion; only a failure to connect or a dropped connection is
        retried (a timeout is not: the server may still be generating)."""
        delay = _FIRST_RETRY_DELAY_S
        attempt = 0
        while True:
            try:
                return await self._http.post(
                    self._completions_url, content=content, headers=headers
                )
            except httpx2.TimeoutException:
                raise
            except httpx2.TransportError:
                if attempt == self._connect_retries:
                    raise
            await asyncio.sleep(delay)
            delay *= 2
            attempt += 1

    def _generation(self, response: httpx2.Response) -> Generation:
        try:
            completion = json.loads(response.content)
            choices = completion["choices"]
            if not isinstance(choices, list):
                raise TypeError(f"choices is {type(choices).__name__}, not a list")
            model = str(completion.get("model") or self.model_name)
            usage = completion.get("usage") or {}
            first = choices[0] if choices else {}
            finish, text = first.get("finish_reason"), (first.get("message") or {}).get("content")
            prompt_tokens, completion_tokens = (
                usage.get("prompt_tokens"),
                usage.get("completion_tokens"),
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise VLMUnavailable(
                f"vLLM at {self._base_url} answered HTTP {response.status_code} without a chat "
                f"completion ({exc!r}); check that the base URL points to its /v1."
            ) from exc
        if not choices:
            raise VLMBadRequest(f"{self.model_name} answered without a choice")
        # vLLM's own finish reason (not an OpenAI one): the server cut the generation short,
        # as it does for requests in flight when it shuts down. The text is a fragment.
        if finish == "abort":
            raise VLMUnavailable(
                f"vLLM at {self._base_url} aborted the generation (it is shutting down or "
                "restarting); try again."
            )
        return Generation(
            text=text if isinstance(text, str) else "",
            model=model,
            prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else None,
            completion_tokens=completion_tokens if isinstance(completion_tokens, int) else None,
        )

    def _status_error(self, status: int, message: str) -> VLMError:
        where = f"vLLM at {self._base_url}"
        if status == 401:
            return VLMUnavailable(
                f"{where} rejected the API key; set it to the key the server was started with "
                "(--api-key)."
            )
        if status == 404:
            return VLMUnavailable(
                f"{where} does not serve {self.model_name!r} ({message}); set the model name "
                "to the server's --served-model-name."
            )
        if status == 429 or status >= 500:
            return VLMUnavailable(f"{where} failed with HTTP {status}: {message}")
        return VLMBadRequest(f"{where} refused the request (HTTP {status}): {message}")


def _error_message(response: httpx2.Response) -> str:
    """``Error code: N - <the body's error message>``, as the openai client words it."""
    found = f"Error code: {response.status_code}"
    try:
        body = json.loads(response.content)
    except ValueError:
        return found
    error = body.get("error", body) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return f"{found} - {message}" if isinstance(message, str) and message else found
