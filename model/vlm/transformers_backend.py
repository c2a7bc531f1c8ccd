"""In-process Qwen2.5-VL through transformers: one generation at a time, off the event loop.

Meant for development, tests and single-user deployments; a served model (vLLM) batches many
requests and is the production path. The model loads lazily on first use (or on :meth:`load`),
on CUDA in bfloat16 when a GPU is visible, else on the CPU in float32. With ``adapter``, a PEFT
LoRA adapter (a folder or Hub id, e.g. the output of ``repic train grpo``) is applied on top of
the base model, unmerged: the weights the paper's numbers were measured with, rather than a
merged checkpoint.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    AutoProcessor,
    Qwen2_5_VLForConditionalGeneration,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from model.lifecycle import LifecycleModel, ModelLifecycle
from model.prompt import RepicPrompt
from model.vlm.base import Generation, VLMBadRequest, VLMTimeout, VLMUnavailable
from model.vlm.messages import encode_prompt, set_pixel_budget
from model.vlm.streaming import Delta

#: The paper's pixel budget: about 1024 visual tokens per image.
DEFAULT_MAX_PIXELS = 1024 * 28 * 28
DEFAULT_REPETITION_PENALTY = 1.05


@dataclass(frozen=True)
class _Loaded:
    model: Any
    processor: Any
    device: torch.device
    dtype: torch.dtype


def _release(_: _Loaded) -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _StopWhenSet(StoppingCriteria):
    """Ends a running ``generate`` at the next token once its caller gave up."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> Any:
        return torch.full((input_ids.shape[0],), self._event.is_set(), device=input_ids.device)


class TransformersBackend(LifecycleModel[_Loaded]):
    """A :class:`~model.vlm.base.VLMBackend` running Qwen2.5-VL in this process.

    ``model`` is a Hub id (resolved through the local Hugging Face cache) or a checkpoint
    directory. Decoding is greedy with ``repetition_penalty``; images are resized to at most
    ``max_pixels`` by the processor, as in the RePIC paper. ``timeout_s`` bounds one call,
    waiting in line included; a call that runs out stops its generation at the next token.
    Loading follows :class:`~model.lifecycle.ModelLifecycle`; a failed load is tried again by
    the first call after ``retry_after_s``. A readiness probe never loads this (large) model.
    """

    def __init__(
        self,
        model: str,
        *,
        repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        timeout_s: float | None = None,
        adapter: str | None = None,
        retry_after_s: float = 0.0,
    ) -> None:
        if repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be positive, got {repetition_penalty}")
        if max_pixels < 4 * 28 * 28:
            raise ValueError(f"max_pixels must be at least {4 * 28 * 28}, got {max_pixels}")
        self.model_name = model
        self.adapter = adapter
        self._repetition_penalty = repetition_penalty
        self._max_pixels = max_pixels
        self._timeout_s = timeout_s
        self.lifecycle = ModelLifecycle(
            model,
            self._load_blocking,
            self._describe,
            release=_release,
            retry_after_s=retry_after_s,
            probe_loads=False,
        )
        # Callers wait their turn here, without holding a worker thread each.
        self._turn = asyncio.Lock()
        # A cancelled caller releases its turn while its thread may still be generating; this
        # lock, taken inside the thread, is what really keeps generations one at a time.
        self._running = threading.Lock()

    async def generate(
        self, prompt: RepicPrompt, *, max_tokens: int, cache_salt: str
    ) -> Generation:
        """Caption ``prompt`` greedily; ``cache_salt`` is unused (no cache shared across users)."""
        if max_tokens < 1:
            raise VLMBadRequest(f"max_tokens must be at least 1, got {max_tokens}")
        stop = threading.Event()
        try:
            async with asyncio.timeout(self._timeout_s):
                loaded = await self.lifecycle.aload()
                async with self._turn:
                    return await asyncio.to_thread(
                        self._generate_blocking, loaded, prompt, max_tokens, stop
                    )
        except TimeoutError as exc:
            raise VLMTimeout(
                f"{self.model_name} gave no caption within {self._timeout_s} s; raise the "
                "timeout, lower max_tokens or serve the model with vLLM on a GPU."
            ) from exc
        finally:
            stop.set()

    async def stream(
        self, prompt: RepicPrompt, *, max_tokens: int, cache_salt: str
    ) -> AsyncIterator[Delta | Generation]:
        """Like :meth:`generate`, streamed through transformers' ``TextIteratorStreamer``.

        The final :class:`Generation` is the decode of all new tokens, exactly what
        :meth:`generate` returns. Closing the iterator early stops the generation at the next
        token.
        """
        if max_tokens < 1:
            raise VLMBadRequest(f"max_tokens must be at least 1, got {max_tokens}")
        loop = asyncio.get_running_loop()
        deadline = None if self._timeout_s is None else loop.time() + self._timeout_s
        stop = threading.Event()
        try:
            loaded = await self.lifecycle.aload()
            async with self._turn:
                streamer = TextIteratorStreamer(
                    loaded.processor.tokenizer, skip_prompt=True, skip_special_tokens=True
                )
                job = asyncio.ensure_future(
                    asyncio.to_thread(
                        self._generate_blocking, loaded, prompt, max_tokens, stop, streamer
                    )
                )
                # A generation that fails before its first token never ends the streamer.
                job.add_done_callback(lambda _: streamer.end())  # type: ignore[no-untyped-call]
                pieces = iter(streamer)
                while (text := await asyncio.to_thread(next, pieces, None)) is not None:
                    if text:
                        yield Delta(text)
                    if deadline is not None and loop.time() > deadline:
                        raise VLMTimeout(
                            f"{self.model_name} did not finish within {self._timeout_s} s; "
                            "raise the timeout or lower max_tokens."
                        )
                generation = await job
        finally:
            stop.set()
        yield generation

    async def aunload(self) -> None:
        """Drop the model after the generation in progress, if any, has finished."""
        async with self._turn:
            await asyncio.to_thread(self._unload_after_generation)

    async def aclose(self) -> None:
        """Drop the model (see :meth:`aunload`)."""
        await self.aunload()

    def _unload_after_generation(self) -> None:
        with self._running:
            self.lifecycle.unload()

    def _describe(self, loaded: _Loaded) -> str:
        adapted = f" with adapter {self.adapter}" if self.adapter else ""
        return f"{self.model_name}{adapted} loaded on {loaded.device} ({loaded.dtype})"

    def _load_blocking(self) -> _Loaded:
        try:
            return self._load_checkpoint()
        except Exception as exc:
            raise VLMUnavailable(self._unavailable_message(exc)) from exc

    def _load_checkpoint(self) -> _Loaded:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        processor: Any = AutoProcessor.from_pretrained(self.model_name)  # type: ignore[no-untyped-call]
        set_pixel_budget(processor, self._max_pixels)
        model: Any = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            self.model_name, dtype=dtype
        )
        if self.adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.adapter)
        model.to(device).eval()
        return _Loaded(model=model, processor=processor, device=device, dtype=dtype)

    def _generate_blocking(
        self,
        loaded: _Loaded,
        prompt: RepicPrompt,
        max_tokens: int,
        stop: threading.Event,
        streamer: TextIteratorStreamer | None = None,
    ) -> Generation:
        with self._running:
            if stop.is_set():
                raise VLMTimeout(f"{self.model_name}: the caller stopped waiting")
            try:
                inputs = encode_prompt(prompt, loaded.processor).to(loaded.device)
            except ValueError as exc:
                raise VLMBadRequest(
                    f"{self.model_name} processor refused the prompt: {exc}"
                ) from exc
            prompt_tokens = int(inputs["input_ids"].shape[-1])
            try:
                with torch.inference_mode():
                    output = loaded.model.generate(
                        **inputs,
                        max_new_tokens=max_tokens,
                        do_sample=False,
                        temperature=None,
                        top_p=None,
                        top_k=None,
                        repetition_penalty=self._repetition_penalty,
                        stopping_criteria=StoppingCriteriaList([_StopWhenSet(stop)]),
                        streamer=streamer,
                    )
            except torch.cuda.OutOfMemoryError as exc:
                raise VLMUnavailable(
                    f"{self.model_name} ran out of GPU memory; lower the pixel budget, the "
                    "number of demonstrations or max_tokens."
                ) from exc
            new_tokens = output[0, prompt_tokens:]
            text = loaded.processor.tokenizer.decode(new_tokens, skip_special_tokens=True)
            return Generation(
                text=text,
                model=self.adapter or self.model_name,
                prompt_tokens=prompt_tokens,
                completion_tokens=int(new_tokens.numel()),
            )

    def _unavailable_message(self, exc: Exception) -> str:
        if self.adapter is not None:
            return (
                f"Cannot load Qwen2.5-VL {self.model_name!r} with the LoRA adapter "
                f"{self.adapter!r} ({type(exc).__name__}: {exc}). The adapter folder needs "
                "adapter_config.json and adapter_model.safetensors (as `repic train grpo` "
                "writes them) and must have been trained on this base model."
            )
        return (
            f"Cannot load the Qwen2.5-VL checkpoint {self.model_name!r} "
            f"({type(exc).__name__}: {exc}). Without Hub access, provide it offline: download it "
            f"where the Hub is reachable (`hf download {self.model_name}`), then either set "
            "REPIC_VLM__MODEL to that local directory (it needs config.json, the *.safetensors "
            "weights and the processor/tokenizer files) or copy it into the Hugging Face cache "
            "(HF_HOME) and set HF_HUB_OFFLINE=1."
        )
