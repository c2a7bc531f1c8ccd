"""The in-process transformers backend and the tiny Qwen2.5-VL checkpoint it runs in tests."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from transformers import Qwen2_5_VLForConditionalGeneration

from model.lifecycle import ModelState
from model.prompt import build_repic_messages
from model.tiny.qwen import RANDOM_WEIGHTS_LABEL, build_tiny_qwen25vl
from model.vlm.base import VLMTimeout, VLMUnavailable
from model.vlm.messages import count_prompt_tokens
from model.vlm.transformers_backend import TransformersBackend
from tests.helpers.qwen import (
    demos,
    solid_image,
    with_pixel_budget,
)

PROMPT = build_repic_messages(demos(2), solid_image(112, 84, (10, 20, 200)))


@pytest.fixture(scope="module")
async def loaded_backend(tiny_qwen_dir: Path) -> AsyncIterator[TransformersBackend]:
    backend = TransformersBackend(str(tiny_qwen_dir))
    await backend.aload()
    yield backend
    await backend.aclose()


def test_tiny_checkpoint_has_the_qwen25vl_layout(tiny_qwen_dir: Path) -> None:
    config = json.loads((tiny_qwen_dir / "config.json").read_text())
    text, vision = config["text_config"], config["vision_config"]
    assert config["model_type"] == "qwen2_5_vl"
    assert text["hidden_size"] // text["num_attention_heads"] == 64
    assert vision["hidden_size"] // vision["num_heads"] == 64
    assert sum(text["rope_scaling"]["mrope_section"]) == 64 // 2
    assert config["repic_random_weights"] == RANDOM_WEIGHTS_LABEL
    assert RANDOM_WEIGHTS_LABEL in (tiny_qwen_dir / "README.md").read_text()
    generation = json.loads((tiny_qwen_dir / "generation_config.json").read_text())
    assert generation["repetition_penalty"] == 1.05
    assert generation["eos_token_id"] == [151645, 151643]
    with safe_open(str(tiny_qwen_dir / "model.safetensors"), "pt") as weights:
        names = set(weights.keys())
    # The Hub checkpoints' tensor names, which every loader maps.
    assert "model.embed_tokens.weight" in names
    assert "visual.patch_embed.proj.weight" in names
    assert "lm_head.weight" not in names  # tied to the embedding


def test_tiny_checkpoint_loads_with_transformers_and_ties_the_head(tiny_qwen_dir: Path) -> None:
    model: Any = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        tiny_qwen_dir, dtype=torch.float32
    )
    embedding = model.get_input_embeddings().weight
    assert embedding.shape == (151936, 128)
    assert torch.equal(model.get_output_embeddings().weight, embedding)


def test_same_seed_gives_identical_weights(tmp_path: Path, tiny_qwen_dir: Path) -> None:
    again = build_tiny_qwen25vl(tmp_path / "again", seed=0)
    other = build_tiny_qwen25vl(tmp_path / "other", seed=1)
    original = (tiny_qwen_dir / "model.safetensors").read_bytes()
    assert (again / "model.safetensors").read_bytes() == original
    assert (other / "model.safetensors").read_bytes() != original


async def test_generates_new_text_for_a_two_demo_prompt(
    loaded_backend: TransformersBackend, tiny_qwen_processor: Any
) -> None:
    generation = await loaded_backend.generate(PROMPT, max_tokens=8, cache_salt="user-1")
    assert isinstance(generation.text, str)
    assert "<|im_start|>" not in generation.text
    assert "Name: <bo>" not in generation.text  # only the new tokens come back
    assert generation.model == loaded_backend.model_name
    assert generation.completion_tokens is not None
    assert 1 <= generation.completion_tokens <= 8
    processor = with_pixel_budget(tiny_qwen_processor, 1024 * 28 * 28)
    assert generation.prompt_tokens == count_prompt_tokens(PROMPT, processor)


async def test_stops_at_max_tokens(loaded_backend: TransformersBackend) -> None:
    short = await loaded_backend.generate(PROMPT, max_tokens=2, cache_salt="")
    longer = await loaded_backend.generate(PROMPT, max_tokens=5, cache_salt="")
    assert short.completion_tokens is not None and longer.completion_tokens is not None
    assert short.completion_tokens <= 2
    assert short.completion_tokens < longer.completion_tokens <= 5


async def test_readiness_goes_from_not_loaded_to_loading_to_loaded(tiny_qwen_dir: Path) -> None:
    backend = TransformersBackend(str(tiny_qwen_dir))
    before = await backend.areadiness()
    assert not before.ready
    assert "not loaded" in before.detail
    loading = asyncio.create_task(backend.aload())
    await asyncio.sleep(0)  # the task runs up to its worker thread and no further
    during = await backend.areadiness()
    assert (backend.state, during.ready) == (ModelState.LOADING, False)
    await loading
    after = await backend.areadiness()
    assert backend.state is ModelState.READY
    assert after.ready
    assert ("cuda" if torch.cuda.is_available() else "cpu") in after.detail
    await backend.aclose()
    closed = await backend.areadiness()
    assert not closed.ready
    assert "not loaded" in closed.detail


async def test_missing_model_dir_is_unavailable_with_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-checkpoint"
    backend = TransformersBackend(str(missing))
    with pytest.raises(VLMUnavailable) as caught:
        await backend.generate(PROMPT, max_tokens=4, cache_salt="")
    message = str(caught.value)
    assert str(missing) in message
    assert "REPIC_VLM__MODEL" in message
    assert "HF_HUB_OFFLINE" in message
    readiness = await backend.areadiness()
    assert backend.state is ModelState.FAILED
    assert not readiness.ready
    assert readiness.detail == f"failed: {message}"


async def test_hub_id_not_in_the_cache_is_unavailable_offline() -> None:
    backend = TransformersBackend("nobody-here/not-a-cached-model")
    with pytest.raises(VLMUnavailable, match="hf download nobody-here/not-a-cached-model"):
        await backend.aload()


async def test_concurrent_calls_run_one_at_a_time(loaded_backend: TransformersBackend) -> None:
    model = loaded_backend.lifecycle.resources.model  # type: ignore[union-attr]
    real_generate = model.generate
    active, most = 0, 0
    guard = threading.Lock()

    def counting_generate(*args: Any, **kwargs: Any) -> Any:
        nonlocal active, most
        with guard:
            active += 1
            most = max(most, active)
        try:
            return real_generate(*args, **kwargs)
        finally:
            with guard:
                active -= 1

    model.generate = counting_generate
    try:
        results = await asyncio.gather(
            *(loaded_backend.generate(PROMPT, max_tokens=3, cache_salt=f"u{i}") for i in range(4))
        )
    finally:
        del model.generate
    assert most == 1
    assert [r.prompt_tokens for r in results] == [results[0].prompt_tokens] * 4


async def test_cancelled_caller_stops_its_generation_early(
    loaded_backend: TransformersBackend,
) -> None:
    model = loaded_backend.lifecycle.resources.model  # type: ignore[union-attr]
    real_generate = model.generate
    started = threading.Event()
    lengths: list[int] = []

    def observed_generate(*args: Any, **kwargs: Any) -> Any:
        started.set()
        output = real_generate(*args, **kwargs)
        lengths.append(output.shape[-1] - kwargs["input_ids"].shape[-1])
        return output

    model.generate = observed_generate
    try:
        task = asyncio.create_task(loaded_backend.generate(PROMPT, max_tokens=1024, cache_salt=""))
        await asyncio.to_thread(started.wait)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await loaded_backend.generate(PROMPT, max_tokens=1, cache_salt="")  # waits for it
    finally:
        del model.generate
    assert lengths[0] < 1024
    assert lengths[1] == 1


async def test_waiting_past_the_timeout_is_a_vlm_timeout(tiny_qwen_dir: Path) -> None:
    backend = TransformersBackend(str(tiny_qwen_dir), timeout_s=0.2)
    await backend.aload()
    try:
        # Holding the queue stands for a long generation of another caller, without timing one.
        async with backend._turn:
            with pytest.raises(VLMTimeout, match="timeout"):
                await backend.generate(PROMPT, max_tokens=4, cache_salt="")
    finally:
        await backend.aclose()


def test_constructor_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_pixels must be at least 3136"):
        TransformersBackend("x", max_pixels=100)
    with pytest.raises(ValueError, match="repetition_penalty must be positive"):
        TransformersBackend("x", repetition_penalty=0)
