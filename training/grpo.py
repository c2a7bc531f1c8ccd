"""GRPO post-training of a Qwen2.5-VL policy with LoRA outside its vision tower (TRL).

The vision tower stays frozen: by default LoRA adapters go on every linear layer whose name
does not contain ``visual``, as the reference trainer chooses them, except ``lm_head``: TRL's
GRPO trainer computes log-probabilities from ``lm_head.weight`` directly and refuses an adapter
there ("the adapter would never be trained"). PEFT freezes everything else, which
:func:`train_grpo` checks before the first step. Each reward
kind (OCT, VLT, ICT) is its own reward function returning ``None`` on the other kinds' rows, so
TRL logs ``rewards/<kind>_reward/mean`` over that kind's rows only; :class:`RewardLog` writes
those to the console and to ``rewards.csv``; TensorBoard gets every logged scalar.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, Features, List, Value
from datasets import Image as ImageFeature
from peft import LoraConfig
from PIL import Image
from torch import nn
from transformers import (
    AutoProcessor,
    Qwen2_5_VLForConditionalGeneration,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.image_utils import SizeDict
from trl.trainer.grpo_config import GRPOConfig
from trl.trainer.grpo_trainer import GRPOTrainer
from trl.trainer.utils import get_callable_name

from training.config import RunConfig
from training.data import read_rows
from training.rewards import RewardFunc, Task, reward_functions

logger = logging.getLogger(__name__)

REWARD_LOG_FILE = "rewards.csv"
RUN_CONFIG_FILE = "run_config.json"
_SCALARS = ("loss", "reward", "reward_std", "kl", "completions/mean_length", "learning_rate")


def load_grpo_dataset(
    data_dir: Path, max_samples: int | None = None, *, max_pixels: int | None = None
) -> Dataset:
    """``train.jsonl`` as a ``datasets.Dataset`` whose ``images`` column decodes to PIL images.

    With ``max_pixels``, a VLT query larger than that is refused: the processor would shrink
    it, and its box would no longer be in the coordinates the model answers in.
    """
    rows = read_rows(data_dir)[:max_samples]
    if not rows:
        raise ValueError(f"{data_dir} holds no training rows; run `repic train build-data`.")
    if max_pixels is not None:
        _check_vlt_frames(rows, max_pixels)
    part = {"type": Value("string"), "text": Value("string")}
    features = Features(
        {
            "id": Value("string"),
            "task": Value("string"),
            "prompt": List({"role": Value("string"), "content": List(part)}),
            "images": List(ImageFeature()),
            "label": Value("string"),
            "bbox": List(Value("float64")),
            "names": List(Value("string")),
            "answer": Value("string"),
        }
    )
    return Dataset.from_list(rows, features=features)


def _check_vlt_frames(rows: Sequence[dict[str, Any]], max_pixels: int) -> None:
    for row in rows:
        if row["task"] != Task.VLT:
            continue
        with Image.open(row["images"][-1]) as query:
            if query.width * query.height > max_pixels:
                raise ValueError(
                    f"{row['id']}: the query is {query.width}x{query.height}, above "
                    f"model.max_pixels ({max_pixels}); rebuild the data with a smaller "
                    "--image-side or raise max_pixels."
                )


class RewardLog(TrainerCallback):
    """One console line and one CSV row per logging step, with each reward kind's mean."""

    def __init__(self, path: Path, kinds: Sequence[str]) -> None:
        self.path = path
        self.columns = ["step", "epoch", *_SCALARS]
        for kind in kinds:
            self.columns += [f"rewards/{kind}/mean", f"rewards/{kind}/std"]
        self._kinds = list(kinds)
        self._started = False

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs is None or "reward" not in logs or not state.is_world_process_zero:
            return
        row = {**logs, "step": state.global_step, "epoch": logs.get("epoch", state.epoch)}
        # A new run into the same folder starts a new file rather than mixing two headers.
        with self.path.open("a" if self._started else "w", newline="", encoding="utf-8") as sink:
            writer = csv.DictWriter(sink, fieldnames=self.columns, extrasaction="ignore")
            if not self._started:
                writer.writeheader()
                self._started = True
            writer.writerow({k: _csv_value(row.get(k)) for k in self.columns})
        per_kind = " ".join(
            f"{kind.removesuffix('_reward')} {_fmt(logs.get(f'rewards/{kind}/mean'))}"
            for kind in self._kinds
        )
        logger.info(
            "step %d | loss %s | reward %s | kl %s | %s",
            state.global_step,
            _fmt(logs.get("loss")),
            _fmt(logs.get("reward")),
            _fmt(logs.get("kl")),
            per_kind,
        )


def train_grpo(config: RunConfig, *, rewards: Sequence[RewardFunc] | None = None) -> Path:
    """Train LoRA adapters with GRPO; return the output folder (adapter and processor).

    ``rewards`` replaces the RePIC rewards configured in ``config.rewards``.
    """
    funcs: list[Any] = (
        list(rewards)
        if rewards is not None
        else reward_functions(
            iou_threshold=config.rewards.iou_threshold,
            min_chars=config.rewards.min_chars,
            reference_compat=config.rewards.reference_compat,
        )
    )
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_CONFIG_FILE).write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    dataset = load_grpo_dataset(
        config.data.dir, config.data.max_samples, max_pixels=config.model.max_pixels
    )
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        config.model.base,
        dtype=getattr(torch, config.model.dtype),
        attn_implementation=config.model.attn_implementation,
    )
    processor = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]
        config.model.base, padding_side="left"
    )
    processor.image_processor.size = SizeDict(
        shortest_edge=config.model.min_pixels, longest_edge=config.model.max_pixels
    )
    g = config.grpo
    devices = int(os.environ.get("WORLD_SIZE", "1"))
    logger.info("%s", g.step_summary(devices))
    args = GRPOConfig(
        output_dir=str(out),
        num_generations=g.num_generations,
        beta=g.beta,
        epsilon=g.epsilon,
        learning_rate=g.learning_rate,
        num_train_epochs=g.epochs,
        max_steps=g.max_steps,
        temperature=g.temperature,
        max_completion_length=g.max_completion_length,
        per_device_train_batch_size=g.per_device_batch_size,
        gradient_accumulation_steps=g.gradient_accumulation_steps,
        loss_type=g.loss_type,
        seed=g.seed,
        data_seed=g.data_seed,
        bf16=g.bf16,
        activation_checkpointing=g.gradient_checkpointing,
        logging_steps=g.logging_steps,
        save_steps=g.save_steps,
        report_to=[r for r in g.report_to if r != "none"] or "none",
        remove_unused_columns=False,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules or reference_lora_targets(model),
        task_type="CAUSAL_LM",
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=lora,
        callbacks=[RewardLog(out / REWARD_LOG_FILE, [get_callable_name(f) for f in funcs])],
    )
    check_only_language_model_trains(trainer.model)
    trainer.train()
    trainer.save_model(str(out))
    return out


def reference_lora_targets(model: nn.Module) -> list[str]:
    """The reference trainer's LoRA targets, every linear layer outside the vision tower (name
    without ``visual``), less ``lm_head``, which TRL cannot train (see the module docstring)."""
    return sorted(
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and "visual" not in name
        and "embed_tokens" not in name
        and name != "lm_head"
    )


def check_only_language_model_trains(model: Any) -> None:
    """Raise unless some parameters train and all of them are LoRA weights outside the vision
    tower."""
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    stray = [n for n in trainable if "lora_" not in n or "visual" in n]
    if not trainable or stray:
        raise RuntimeError(
            "LoRA must train only adapters outside the vision tower; "
            + (f"these would train too: {stray[:5]}" if stray else "nothing is trainable")
            + ". Check lora.target_modules against the model's module names."
        )


def _csv_value(value: Any) -> Any:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"
