"""Serving a LoRA adapter on top of its base model, as the paper's numbers were measured.

A tiny random adapter for the tiny Qwen2.5-VL (both matrices random, so it changes the output)
is served in-process through PEFT and by the session's real vLLM CPU server, started with
``--enable-lora``, where the API names the adapter as its model. Random weights write random
text: the tests check that the adapter is applied (the output differs from the base model's),
not quality.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from app.core.settings import VLMSettings
from model.prompt import build_repic_messages
from model.vlm.base import VLMUnavailable
from model.vlm.openai_backend import OpenAIBackend
from model.vlm.transformers_backend import TransformersBackend
from tests.helpers.qwen import demos, solid_image
from tests.helpers.vllm import LORA_ADAPTER_NAME, VLLMServer

PROMPT = build_repic_messages(demos(2), solid_image(112, 84, (10, 20, 200)))
MAX_TOKENS = 12


async def caption_with(backend: TransformersBackend | OpenAIBackend) -> str:
    try:
        return (await backend.generate(PROMPT, max_tokens=MAX_TOKENS, cache_salt="t")).text
    finally:
        await backend.aclose()


# --- in-process, through PEFT -------------------------------------------------------------------


@pytest.fixture(scope="module")
async def base_text(tiny_qwen_dir: Path) -> str:
    return await caption_with(TransformersBackend(str(tiny_qwen_dir)))


async def test_peft_adapter_changes_the_in_process_caption(
    tiny_qwen_dir: Path, tiny_lora_dir: Path, base_text: str
) -> None:
    backend = TransformersBackend(str(tiny_qwen_dir), adapter=str(tiny_lora_dir))
    await backend.aload()
    assert "with adapter" in (await backend.areadiness()).detail
    generation = await backend.generate(PROMPT, max_tokens=MAX_TOKENS, cache_salt="t")
    await backend.aclose()
    assert generation.model == str(tiny_lora_dir)
    assert generation.text != base_text
    # the same adapter answers the same (greedy): the difference is the adapter, not noise
    again = TransformersBackend(str(tiny_qwen_dir), adapter=str(tiny_lora_dir))
    assert await caption_with(again) == generation.text


async def test_missing_adapter_is_unavailable_with_what_to_do(
    tiny_qwen_dir: Path, tmp_path: Path
) -> None:
    backend = TransformersBackend(str(tiny_qwen_dir), adapter=str(tmp_path / "nowhere"))
    with pytest.raises(VLMUnavailable, match=r"adapter_config\.json"):
        await backend.aload()


def test_adapter_setting_refused_with_the_vllm_backend() -> None:
    with pytest.raises(ValidationError, match="--enable-lora --lora-modules"):
        VLMSettings(backend="openai", adapter="runs/repic")
    assert VLMSettings(adapter="runs/repic").adapter == "runs/repic"


# --- vLLM with --enable-lora --------------------------------------------------------------------


def backend_for(server: VLLMServer, model: str) -> OpenAIBackend:
    return OpenAIBackend(model, base_url=server.base_url, api_key=server.api_key)


@pytest.mark.vllm
def test_vllm_lists_the_adapter_beside_the_base_model(vllm_server: VLLMServer) -> None:
    response = httpx.get(
        f"{vllm_server.base_url}/models",
        headers={"Authorization": f"Bearer {vllm_server.api_key}"},
    )
    models = {m["id"]: m for m in response.json()["data"]}
    assert set(models) == {vllm_server.model_name, LORA_ADAPTER_NAME}
    assert models[LORA_ADAPTER_NAME]["parent"] == vllm_server.model_name


@pytest.mark.vllm
async def test_vllm_serves_the_adapter_when_the_api_names_it(vllm_server: VLLMServer) -> None:
    base = await caption_with(backend_for(vllm_server, vllm_server.model_name))
    adapted = await caption_with(backend_for(vllm_server, LORA_ADAPTER_NAME))
    assert adapted != base
    assert await caption_with(backend_for(vllm_server, LORA_ADAPTER_NAME)) == adapted
