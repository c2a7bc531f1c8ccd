"""The TOML file of a GRPO run; defaults are the RePIC paper's recipe.

Every section and key is optional; unknown keys are refused, so a typo cannot silently fall
back to a default. Relative paths are taken from the working directory. Example::

    output_dir = "runs/repic-grpo"

    [model]
    base = "Qwen/Qwen2.5-VL-7B-Instruct"

    [data]
    dir = "data/grpo"

    [grpo]
    num_generations = 8
    per_device_batch_size = 8
    gradient_accumulation_steps = 2
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from training.rewards import DEFAULT_IOU_THRESHOLD, DEFAULT_MIN_CHARS

#: The language model's projections as one pattern: the same modules the default computes from
#: the model for Qwen2.5-VL. The vision blocks have gate/up/down projections too, so a plain
#: list of names would adapt them as well.
LANGUAGE_MODEL_LINEAR_LAYERS = (
    r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
)
QWEN_PIXELS_PER_TOKEN = 28 * 28
#: The reference trainer's processor limits (its script's ``max_pixels``/``min_pixels``).
REFERENCE_MAX_PIXELS = 12_845_056
REFERENCE_MIN_PIXELS = 3136
#: The reference launch script: 8 GPUs, one completion each per micro-batch, 2 accumulations.
REFERENCE_DEVICES = 8
REFERENCE_PER_DEVICE_BATCH = 1
REFERENCE_ACCUMULATION = 2


ReportTarget = Literal["tensorboard", "wandb", "none"]


def _tensorboard() -> list[ReportTarget]:
    return ["tensorboard"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSection(_Section):
    base: str = Field("Qwen/Qwen2.5-VL-7B-Instruct", description="Hub id or local folder.")
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    max_pixels: int = Field(
        REFERENCE_MAX_PIXELS,
        ge=4 * QWEN_PIXELS_PER_TOKEN,
        description="Processor pixel budget per image, as the reference trainer.",
    )
    min_pixels: int = Field(
        REFERENCE_MIN_PIXELS,
        ge=4 * QWEN_PIXELS_PER_TOKEN,
        description="Processor pixel floor per image, as the reference trainer.",
    )


class DataSection(_Section):
    dir: Path = Field(Path("data/grpo"), description="Output folder of `repic train build-data`.")
    max_samples: int | None = Field(None, ge=1, description="Use only the first N rows.")


class LoraSection(_Section):
    r: int = Field(64, ge=1, le=1024)
    alpha: int = Field(128, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: str | None = Field(
        None,
        description="Regular expression of module names; unset: the reference's rule, every "
        "linear layer outside the vision tower, less lm_head (TRL cannot train it).",
    )

    @field_validator("target_modules")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"target_modules is not a valid regular expression: {exc}") from exc
        return value


class GRPOSection(_Section):
    num_generations: int = Field(8, ge=2, description="Rollouts per prompt.")
    beta: float = Field(0.04, ge=0.0, description="KL coefficient.")
    epsilon: float = Field(0.2, gt=0.0, lt=1.0, description="PPO clip range.")
    learning_rate: float = Field(1e-5, gt=0.0, le=1e-2)
    epochs: float = Field(2.0, gt=0.0)
    max_steps: int = Field(-1, ge=-1, description="Stop after N optimizer steps (-1: epochs).")
    temperature: float = Field(1.0, gt=0.0)
    max_completion_length: int = Field(256, ge=1)
    per_device_batch_size: int = Field(
        8, ge=1, description="Completions (not prompts) per device and step."
    )
    gradient_accumulation_steps: int = Field(
        REFERENCE_ACCUMULATION, ge=1, description="Micro-batches per optimizer step."
    )
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = "grpo"
    seed: int = Field(42, description="Trainer seed (the reference's default).")
    data_seed: int = Field(2024, description="Sampler seed (the reference's --data_seed).")
    bf16: bool = True
    gradient_checkpointing: bool = True
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(100, ge=1)
    report_to: list[ReportTarget] = Field(default_factory=_tensorboard)

    def step_summary(self, devices: int = 1) -> str:
        """What one optimizer step holds, beside the reference's, for the start-up log."""
        completions = self.per_device_batch_size * self.gradient_accumulation_steps * devices
        reference = REFERENCE_DEVICES * REFERENCE_PER_DEVICE_BATCH * REFERENCE_ACCUMULATION
        return (
            f"one optimizer step: {completions // self.num_generations} prompts x "
            f"{self.num_generations} completions = {completions} completions "
            f"({devices} device(s) x {self.per_device_batch_size} per micro-batch x "
            f"{self.gradient_accumulation_steps} accumulation); reference: "
            f"{reference // self.num_generations} prompts x {self.num_generations} = {reference} "
            f"({REFERENCE_DEVICES} GPUs x {REFERENCE_PER_DEVICE_BATCH} x {REFERENCE_ACCUMULATION})"
        )

    @model_validator(mode="after")
    def _whole_groups(self) -> GRPOSection:
        per_step = self.per_device_batch_size * self.gradient_accumulation_steps
        if per_step % self.num_generations:
            raise ValueError(
                f"per_device_batch_size x gradient_accumulation_steps ({per_step}) must be a "
                f"multiple of num_generations ({self.num_generations}): every prompt's "
                "rollouts are scored as one group."
            )
        return self


class RewardSection(_Section):
    iou_threshold: float = Field(DEFAULT_IOU_THRESHOLD, gt=0.0, le=1.0)
    min_chars: int = Field(DEFAULT_MIN_CHARS, ge=0)
    reference_compat: bool = Field(
        True,
        description="Parse answers as the reference does (yes/no by substring, integer boxes "
        "and its IoU, case-sensitive names); false: the stricter word rules.",
    )


class RunConfig(_Section):
    """A whole GRPO run: where it writes, and the five sections above."""

    output_dir: Path = Path("runs/repic-grpo")
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    grpo: GRPOSection = Field(default_factory=GRPOSection)
    rewards: RewardSection = Field(default_factory=RewardSection)


class RunConfigError(ValueError):
    """A run file that cannot be used; the message names the file and every problem."""


def load_run_config(path: Path) -> RunConfig:
    """Read and validate a run's TOML file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RunConfigError(f"{path}: {exc}") from exc
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise RunConfigError(f"{path}: {problems}") from exc
