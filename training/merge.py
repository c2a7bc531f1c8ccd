"""Fold trained LoRA adapters into the base Qwen2.5-VL and write a servable checkpoint.

The merged folder holds the weights, ``config.json``, the generation config of the base (greedy
with repetition penalty 1.05, as RePIC decodes) and the processor with its chat template, so
transformers (4 or 5) and vLLM load it like any Hub checkpoint of Qwen2.5-VL.
"""

from __future__ import annotations

from pathlib import Path

from peft import PeftConfig, PeftModel
from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
_CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def merge_adapter(adapter_dir: Path, out_dir: Path, *, base: str | None = None) -> Path:
    """Merge the adapter in ``adapter_dir`` into ``base`` (default: the base it was trained on)."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty; choose a new or empty folder.")
    base = base or PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    if not base:
        raise ValueError(f"{adapter_dir} does not name its base model; pass the base explicitly.")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(base, dtype="auto")
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out_dir))
    # The run folder carries the processor it trained with (pixel limits included).
    has_processor = any((adapter_dir / name).is_file() for name in _PROCESSOR_FILES)
    source = str(adapter_dir) if has_processor else base
    processor = AutoProcessor.from_pretrained(source)  # type: ignore[no-untyped-call]
    if not processor.chat_template:
        raise ValueError(f"The processor of {adapter_dir} / {base} carries no chat template.")
    processor.save_pretrained(str(out_dir))
    # transformers 5 folds the image settings into processor_config.json; loaders on
    # transformers 4 (e.g. vLLM images that pin it) look for preprocessor_config.json.
    processor.image_processor.save_pretrained(str(out_dir))
    if not any((out_dir / name).is_file() for name in _CHAT_TEMPLATE_FILES):
        raise RuntimeError(f"{out_dir} was written without a chat template file.")
    return out_dir
