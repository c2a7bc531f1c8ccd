"""Tiny random-weight CLIP models in open_clip's own formats.

:func:`build_tiny_clip` writes what a user would hand the service for any local CLIP: an open_clip
model-config JSON and a checkpoint file. Pointing the embedder at them
(``REPIC_EMBEDDER__MODEL=<dir>/repic-tiny-clip.json``,
``REPIC_EMBEDDER__PRETRAINED=<dir>/repic-tiny-clip.safetensors``) runs the same loading code as
the real ``ViT-L-14-336`` weights, in milliseconds. :func:`write_vit_b32_sized_config` describes a
model with ViT-B-32's image tower for throughput measurements (random weights, no checkpoint).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import open_clip
import torch
from safetensors.torch import save_file

TINY_CLIP_NAME = "repic-tiny-clip"
VIT_B32_SIZED_NAME = "repic-vit-b-32-sized"

# A text tower is part of every open_clip CLIP; the embedder never runs it, so it stays tiny.
# The real BPE vocabulary size keeps open_clip's tokenizer usable against it.
_TINY_TEXT_CFG: dict[str, Any] = {
    "context_length": 77,
    "vocab_size": 49408,
    "width": 32,
    "heads": 2,
    "layers": 2,
}

TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": _TINY_TEXT_CFG,
}

VIT_B32_SIZED_CONFIG: dict[str, Any] = {
    "embed_dim": 512,
    "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
    "text_cfg": _TINY_TEXT_CFG,
}


class TinyClip(NamedTuple):
    """Files of a built tiny CLIP and the architecture name open_clip registers it under."""

    config_path: Path
    checkpoint_path: Path
    model_name: str


def _write_config(out_dir: Path, name: str, config: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def build_tiny_clip(out_dir: Path, *, seed: int = 0) -> TinyClip:
    """Write a 2-layer, width-64 ViT CLIP (64x64 input, 32-d embeddings) with random weights.

    The same ``seed`` always gives the same weights; the global torch RNG is left untouched.
    """
    config_path = _write_config(out_dir, TINY_CLIP_NAME, TINY_CLIP_CONFIG)
    open_clip.add_model_config(config_path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(TINY_CLIP_NAME, pretrained=None)
    checkpoint_path = out_dir / f"{TINY_CLIP_NAME}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint_path))
    return TinyClip(config_path, checkpoint_path, TINY_CLIP_NAME)


def write_vit_b32_sized_config(out_dir: Path) -> Path:
    """Write a config with ViT-B-32's image tower (224 px, 12 layers, width 768, 512-d output).

    Load it with ``pretrained=None`` (random weights): it is for measuring speed, not quality.
    """
    return _write_config(out_dir, VIT_B32_SIZED_NAME, VIT_B32_SIZED_CONFIG)
