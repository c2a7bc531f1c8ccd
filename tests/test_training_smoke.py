"""GRPO end to end on the CPU: data of every kind, two steps, adapter, merge, captioning.

A random-weight policy earns 0 on every RePIC reward, so their advantages vanish. A test-only
dense reward (a hash of the sampled token ids) gives each completion of a group a different
score; under it the update path must move the LoRA weights.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from model.vlm.transformers_backend import TransformersBackend
from tests.helpers import images
from tests.helpers.qwen import demos, solid_image
from tests.helpers.training import make_concept_database
from training.concepts import load_concepts
from training.config import RunConfig
from training.data import DataConfig, build_dataset, read_rows
from training.feedback import FeedbackCase, FeedbackConcept, export_feedback
from training.grpo import (
    REWARD_LOG_FILE,
    check_only_language_model_trains,
    load_grpo_dataset,
    train_grpo,
)
from training.merge import merge_adapter
from training.prompts import (
    ICT_NAME_SUFFIX,
    ICT_NO_REPEAT_SUFFIX,
    ICT_QUESTION,
    OCT_SUFFIX,
    VLT_SUFFIX,
)
from training.rewards import reward_functions

pytestmark = pytest.mark.slow

KINDS = ("oct_reward", "vlt_reward", "ict_reward", "dense_reward")


def dense_reward(
    completions: list[Any], completion_ids: list[list[int]], **_: Any
) -> list[float | None]:
    """Test-only: a score that differs between completions of one prompt."""
    return [(sum(ids) % 97) / 97 for ids in completion_ids]


@pytest.fixture(scope="module")
def run(tiny_qwen_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("grpo")
    database = make_concept_database(root / "db", concepts=4, images_per_concept=2, size=(96, 72))
    # One sample of each kind: with 3 prompts x 2 rollouts per step, every step sees all three.
    build_dataset(load_concepts(database), root / "data", DataConfig(samples=3, image_side=112))
    config = RunConfig.model_validate(
        {
            "output_dir": str(root / "run"),
            "model": {"base": str(tiny_qwen_dir), "dtype": "float32", "max_pixels": 112 * 112},
            "data": {"dir": str(root / "data")},
            "lora": {"r": 4, "alpha": 8},
            "grpo": {
                "num_generations": 2,
                "per_device_batch_size": 6,
                "gradient_accumulation_steps": 1,
                "epochs": 2,
                "max_completion_length": 6,
                "bf16": False,
                "gradient_checkpointing": False,
            },
        }
    )
    adapter = train_grpo(config, rewards=[*reward_functions(), dense_reward])
    merged = merge_adapter(adapter, root / "merged")
    return SimpleNamespace(adapter=adapter, merged=merged, data=root / "data", base=tiny_qwen_dir)


def test_dataset_loads_with_decoded_images(run: SimpleNamespace) -> None:
    dataset = load_grpo_dataset(run.data)
    assert sorted(dataset["task"]) == ["ict", "oct", "vlt"]
    row = dataset[0]
    assert len(row["images"]) == sum(p["type"] == "image" for p in row["prompt"][-1]["content"])
    assert all(img.mode == "RGB" for img in row["images"])


def test_the_trained_prompts_are_the_reference_trainers(run: SimpleNamespace) -> None:
    # Each task's row as the paper's training script builds it (golden renderings of each
    # task's text are in test_training_data.py): one user turn, images first, one text part.
    for row in read_rows(run.data):
        [turn] = row["prompt"]
        *images, text = turn["content"]
        assert turn["role"] == "user" and images == [{"type": "image"}] * len(row["images"])
        *demos, question = text["text"].split("\n")
        assert demos and all(d.startswith(f"{i}. Name: <") for i, d in enumerate(demos, 1))
        if row["task"] == "oct":
            assert question.startswith("Is <") and question.endswith(OCT_SUFFIX)
        elif row["task"] == "vlt":
            assert len(images) == 1 and question.endswith(VLT_SUFFIX)
        else:
            tail = question.removeprefix(ICT_QUESTION)
            assert tail in ("", ICT_NAME_SUFFIX, ICT_NO_REPEAT_SUFFIX)


def test_vlt_queries_larger_than_the_pixel_budget_are_refused(run: SimpleNamespace) -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        load_grpo_dataset(run.data, max_pixels=28 * 28 * 4)


def test_every_step_logs_a_finite_loss_and_every_reward_kind(run: SimpleNamespace) -> None:
    with (run.adapter / REWARD_LOG_FILE).open() as source:
        rows = list(csv.DictReader(source))
    assert [int(r["step"]) for r in rows] == [1, 2]
    for row in rows:
        assert math.isfinite(float(row["loss"]))
        for kind in KINDS:
            assert 0.0 <= float(row[f"rewards/{kind}/mean"]) <= 1.0
    assert list(run.adapter.rglob("events.out.tfevents.*")), "no TensorBoard log"


def test_adapter_holds_only_language_model_lora_weights_that_moved(run: SimpleNamespace) -> None:
    weights = load_file(str(run.adapter / "adapter_model.safetensors"))
    assert weights and all("language_model" in k and "lora_" in k for k in weights)
    # every linear layer outside the vision tower (lm_head aside): the MLP's too
    assert any("mlp.down_proj" in k for k in weights) and any("o_proj" in k for k in weights)
    # PEFT starts every lora_B at zero: a non-zero one is the update the dense reward drove.
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert any(bool(t.abs().sum() > 0) for t in lora_b)
    assert (run.adapter / "chat_template.jinja").is_file()


def test_merged_model_changes_the_language_model_only(run: SimpleNamespace) -> None:
    base = load_file(str(run.base / "model.safetensors"))
    merged: dict[str, Any] = {}
    for shard in run.merged.glob("*.safetensors"):
        merged |= load_file(str(shard))

    def tensor(suffix: str, weights: dict[str, Any]) -> Any:
        return next(t for k, t in weights.items() if k.endswith(suffix)).float()

    q_proj = "layers.0.self_attn.q_proj.weight"
    assert not tensor(q_proj, merged).equal(tensor(q_proj, base))
    vision = "blocks.0.mlp.gate_proj.weight"
    assert tensor(vision, merged).equal(tensor(vision, base))
    assert not any("lora_" in k for k in merged)


def test_a_trainable_vision_weight_is_refused() -> None:
    model = torch.nn.Module()
    model.language_model_q_lora_A = torch.nn.Linear(2, 2)
    model.visual_gate_proj_lora_A = torch.nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="visual_gate_proj_lora_A"):
        check_only_language_model_trains(model)
    model.requires_grad_(False)
    with pytest.raises(RuntimeError, match="nothing is trainable"):
        check_only_language_model_trains(model)


async def test_merged_model_captions_through_the_backend(run: SimpleNamespace) -> None:
    from model.prompt import build_repic_messages

    backend = TransformersBackend(str(run.merged), max_pixels=112 * 112)
    prompt = build_repic_messages(demos(2), solid_image(112, 84, (10, 200, 30)))
    try:
        generation = await backend.generate(prompt, max_tokens=4, cache_salt="test")
    finally:
        await backend.aclose()
    assert isinstance(generation.text, str)
    assert generation.completion_tokens is not None and 1 <= generation.completion_tokens <= 4
    assert generation.prompt_tokens is not None and generation.prompt_tokens > 20


def test_two_grpo_steps_on_samples_exported_from_corrections(
    tiny_qwen_dir: Path, tmp_path: Path
) -> None:
    # What `repic train export-feedback` writes for a handful of corrections (the database
    # side is tested in test_feedback_export.py): <mochi> confirmed and taught with a box,
    # <bo> marked wrongly named.
    mochi = FeedbackConcept("mochi", "a white cat", images.pattern(11, size=(96, 72)))
    bo = FeedbackConcept("bo", "a corgi", images.pattern(12, size=(96, 72)))
    cases = [
        FeedbackCase("1", images.pattern(13, size=(96, 72)), present=[mochi], wrong=[bo]),
        FeedbackCase("2", images.pattern(14, size=(96, 72)), boxes=[(mochi, [8, 8, 60, 50])]),
    ]
    manifest = export_feedback(cases, tmp_path / "data", image_side=112)
    assert manifest["counts"] == {"oct": 2, "vlt": 1, "ict": 1}
    config = RunConfig.model_validate(
        {
            "output_dir": str(tmp_path / "run"),
            "model": {"base": str(tiny_qwen_dir), "dtype": "float32", "max_pixels": 112 * 112},
            "data": {"dir": str(tmp_path / "data")},
            "lora": {"r": 4, "alpha": 8},
            "grpo": {
                "num_generations": 2,
                "per_device_batch_size": 4,
                "gradient_accumulation_steps": 1,
                "max_steps": 2,
                "max_completion_length": 6,
                "bf16": False,
                "gradient_checkpointing": False,
            },
        }
    )
    adapter = train_grpo(config, rewards=[*reward_functions(), dense_reward])
    with (adapter / REWARD_LOG_FILE).open() as source:
        rows = list(csv.DictReader(source))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(math.isfinite(float(r["loss"])) for r in rows)
