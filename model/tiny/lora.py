"""A tiny random LoRA adapter for the tiny Qwen2.5-VL, to test adapter serving end to end.

PEFT starts ``lora_B`` at zero, which would make the adapter a no-op; here both matrices are
random, so the adapted model answers differently from its base. The adapter covers the
language model's projections, the layers ``repic train grpo`` adapts by default.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import Qwen2_5_VLForConditionalGeneration

#: The language model's projections (not the vision blocks, which share some names).
ADAPTED_LAYERS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def build_tiny_lora_adapter(base_dir: Path, out_dir: Path, *, rank: int = 8, seed: int = 0) -> Path:
    """Write a random rank-``rank`` adapter for the checkpoint in ``base_dir`` to ``out_dir``."""
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=ADAPTED_LAYERS,
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    get_peft_model(model, config).save_pretrained(str(out_dir))
    return out_dir
