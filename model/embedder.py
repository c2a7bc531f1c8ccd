"""CLIP image embeddings through open_clip: L2-normalised float32 rows, one batched forward.

How the two settings select a model:

* ``REPIC_EMBEDDER__MODEL``: an open_clip architecture name (``ViT-L-14-336``), or the path of an
  open_clip model-config JSON, which is registered under the file's stem.
* ``REPIC_EMBEDDER__PRETRAINED``: an open_clip pretrained tag (``openai``), fetched once into the
  Hugging Face cache; or a local checkpoint file (``.safetensors``, ``.bin``, ``.pt``, ``.pth``);
  or a directory holding one.

:attr:`ClipEmbedder.model_id` names the vectors this embedder produces. Stored vectors carry it,
and vectors with different ids are never compared.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image
from torchvision.transforms import Compose, InterpolationMode, Normalize, Resize, ToTensor

from model.images import resample
from model.lifecycle import LifecycleModel, ModelLifecycle, ModelReadiness, ModelUnavailable

_CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_PREFERRED_CHECKPOINTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "model.safetensors",
    "pytorch_model.bin",
)
_HASH_CHUNK = 8 * 1024 * 1024


class EmbedderUnavailable(ModelUnavailable):
    """The configured CLIP model cannot be loaded; the message says how to fix it."""


@dataclass(frozen=True)
class _Loaded:
    visual: torch.nn.Module
    preprocess: Any
    device: torch.device
    dtype: torch.dtype


@dataclass(frozen=True)
class _Resolved:
    """The settings turned into open_clip arguments and the id of the vectors they give."""

    arch: str
    model_cfg: dict[str, Any]
    checkpoint: str | None
    force_quick_gelu: bool
    model_id: str


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _checkpoint_in_dir(directory: Path) -> Path | None:
    for name in _PREFERRED_CHECKPOINTS:
        if (directory / name).is_file():
            return directory / name
    found = sorted(p for p in directory.iterdir() if p.suffix in _CHECKPOINT_SUFFIXES)
    return found[0] if len(found) == 1 else None


def _offline_help(arch: str, tag: str) -> str:
    return (
        "To run offline, either fetch the weights once where the network is reachable "
        f"(python -c \"import open_clip; open_clip.create_model('{arch}', pretrained='{tag}')\" "
        "fills the Hugging Face cache; keep HF_HOME on a persistent volume), or set "
        "REPIC_EMBEDDER__PRETRAINED to a local open_clip checkpoint file."
    )


def _register_config(path: Path) -> tuple[str, dict[str, Any], str]:
    """Register a model-config JSON with open_clip; return its name, content and content hash."""
    if not path.is_file():
        raise EmbedderUnavailable(
            f"REPIC_EMBEDDER__MODEL points to {path}, which is not a file; give an open_clip "
            "architecture name (e.g. ViT-L-14-336) or the path of an open_clip model-config JSON."
        )
    raw = path.read_bytes()
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise EmbedderUnavailable(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or not {"embed_dim", "vision_cfg", "text_cfg"} <= config.keys():
        raise EmbedderUnavailable(
            f"{path} is not an open_clip model config (needs embed_dim, vision_cfg and text_cfg)."
        )
    arch = path.stem
    known = open_clip.get_model_config(arch)
    if known is not None and known != config:
        raise EmbedderUnavailable(
            f"{path} differs from the already registered architecture '{arch}' (open_clip's "
            "own or another file of that name); rename the file."
        )
    if known is None:
        open_clip.add_model_config(path)
    return arch, config, hashlib.sha256(raw).hexdigest()[:12]


def _resolve(model: str, pretrained: str | None) -> _Resolved:
    if model.startswith(("hf-hub:", "local-dir:")):
        raise EmbedderUnavailable(
            f"REPIC_EMBEDDER__MODEL={model!r}: use an architecture name or a model-config JSON "
            "path, and name the weights in REPIC_EMBEDDER__PRETRAINED."
        )
    if model.endswith(".json"):
        arch, model_cfg, config_hash = _register_config(Path(model))
        id_arch = f"{arch}@{config_hash}"
    else:
        arch, id_arch = model, model
        found = open_clip.get_model_config(arch)
        if found is None:
            raise EmbedderUnavailable(
                f"REPIC_EMBEDDER__MODEL={model!r} is not an open_clip architecture "
                "(see open_clip.list_models()) nor a model-config JSON path."
            )
        model_cfg = found

    if pretrained is None:
        # Two random initialisations are two different embedders.
        return _Resolved(
            arch, model_cfg, None, False, f"open_clip:{id_arch}:random-{uuid.uuid4().hex[:8]}"
        )

    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if tag_cfg:
        # OpenAI's weights were trained with QuickGELU, which the plain configs do not say.
        quick_gelu = bool(tag_cfg.get("quick_gelu", False)) and not model_cfg.get("quick_gelu")
        tag = pretrained.lower().replace("-", "_")  # open_clip's spelling: one id per tag
        return _Resolved(arch, model_cfg, tag, quick_gelu, f"open_clip:{id_arch}:{tag}")

    path = Path(pretrained)
    checkpoint = _checkpoint_in_dir(path) if path.is_dir() else path if path.is_file() else None
    if checkpoint is None:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise EmbedderUnavailable(
            f"REPIC_EMBEDDER__PRETRAINED={pretrained!r} is neither a pretrained tag of {arch} "
            f"(known: {', '.join(tags) or 'none'}) nor an existing checkpoint file or a directory "
            f"holding exactly one. {_offline_help(arch, 'openai')}"
        )
    digest = _sha256_file(checkpoint)[:16]
    return _Resolved(
        arch, model_cfg, str(checkpoint), False, f"open_clip:{id_arch}:sha256-{digest}"
    )


class ClipEmbedder(LifecycleModel[_Loaded]):
    """Lazy, thread-safe open_clip image encoder (a :class:`~model.lifecycle.ModelLifecycle`).

    ``device="auto"`` picks CUDA when available and runs it in fp16 there. After a failed load the
    error is repeated for ``retry_after_s`` seconds before loading is tried again, so a missing
    model costs one attempt per interval, not one per request.
    """

    def __init__(
        self,
        model: str,
        pretrained: str | None,
        device: str = "auto",
        batch_size: int = 32,
        *,
        cache_dir: Path | None = None,
        retry_after_s: float = 60.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
        self._model_setting = model
        self._pretrained = pretrained
        self._device_setting = device
        self.batch_size = batch_size
        self._cache_dir = cache_dir
        # Guards the resolution of the settings, which the lifecycle's load also needs.
        self._lock = threading.Lock()
        self._resolved: _Resolved | None = None
        self.lifecycle = ModelLifecycle(
            model, self._load_blocking, self._describe, retry_after_s=retry_after_s
        )

    def _resolve_locked(self) -> _Resolved:
        if self._resolved is None:
            self._resolved = _resolve(self._model_setting, self._pretrained)
        return self._resolved

    @property
    def model_id(self) -> str:
        """Stable name of the vectors: ``open_clip:<arch>:<tag>`` or ``...:sha256-<prefix>``.

        A local checkpoint is named by its content, so replacing the file changes the id; a config
        JSON adds its content hash to the architecture name. Raises :class:`EmbedderUnavailable`
        when the settings do not name a usable model.
        """
        with self._lock:
            return self._resolve_locked().model_id

    @property
    def dim(self) -> int:
        """Length of the embedding vectors (known from the config, without loading weights)."""
        with self._lock:
            return int(self._resolve_locked().model_cfg["embed_dim"])

    @property
    def input_size(self) -> int:
        """Side of the square input of the vision tower (from the config, no weights loaded)."""
        with self._lock:
            size = self._resolve_locked().model_cfg["vision_cfg"]["image_size"]
        return int(size) if isinstance(size, int) else int(max(size))

    def readiness(self) -> ModelReadiness:
        """Whether the weights are loaded, loading, not yet loaded, or failed to load (and why)."""
        return self.lifecycle.readiness()

    def load(self) -> None:
        """Load the weights once; raises :class:`EmbedderUnavailable` when they cannot be."""
        self.lifecycle.load()

    def _describe(self, loaded: _Loaded) -> str:
        model_id = self._resolved.model_id if self._resolved else self._model_setting
        return f"{model_id} on {loaded.device}"

    def _load_blocking(self) -> _Loaded:
        with self._lock:
            resolved = self._resolve_locked()
        if self._device_setting == "auto":
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            device = torch.device(self._device_setting)
        half = device.type == "cuda"
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                resolved.arch,
                pretrained=resolved.checkpoint,
                precision="fp16" if half else "fp32",
                device=device,
                force_quick_gelu=resolved.force_quick_gelu,
                cache_dir=str(self._cache_dir) if self._cache_dir else None,
            )
        except Exception as exc:  # open_clip wraps download and format errors in bare RuntimeErrors
            raise EmbedderUnavailable(
                f"Could not load CLIP {resolved.arch} with pretrained={self._pretrained!r}: {exc}. "
                f"{_offline_help(resolved.arch, self._pretrained or 'openai')}"
            ) from exc
        # Only the image tower is ever run; dropping the text tower frees its memory.
        visual = model.visual.eval().requires_grad_(False)
        del model
        return _Loaded(visual, preprocess, device, torch.float16 if half else torch.float32)

    def shrink_to_input(self, images: Sequence[Image.Image]) -> list[Image.Image]:
        """Each image reduced to the size the preprocessing's first step would resize it to.

        open_clip's usual first step resizes the shorter side to the input size with Pillow's
        bicubic filter, which on a photo of a few megapixels costs far more than the forward.
        Here the same reduction runs through :func:`model.images.resample` (the same
        antialiased bicubic filter, within 2 levels of 255), so that step then finds the image
        at its size and only copies it. Images already at or below that size, and pipelines that
        start otherwise, are returned as they are. The service embeds through this; :meth:`embed`
        alone keeps open_clip's preprocessing exactly (evaluation).
        """
        steps = self.lifecycle.load().preprocess
        first = steps.transforms[0] if isinstance(steps, Compose) and steps.transforms else None
        side = _shortest_side_resize(first)
        if side is None:
            return list(images)
        return [_shrunk(img, side) for img in images]

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed images into a float32 ``[n, dim]`` array of unit-length rows.

        All images go through the model in batches of at most ``batch_size``.
        """
        loaded = self.lifecycle.load()
        visual, preprocess = loaded.visual, loaded.preprocess
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                batch = preprocess_batch(preprocess, images[start : start + self.batch_size])
                batch = batch.to(loaded.device, dtype=loaded.dtype)
                chunks.append(visual(batch).float().cpu().numpy())
        vectors = np.concatenate(chunks).astype(np.float32, copy=False)
        # Normalised in float32 after the forward: fp16 norms are off by about 1e-3.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def _shortest_side_resize(step: Any) -> int | None:
    """The target of a ``Resize(n)`` that scales the shorter side to n with bicubic filtering."""
    if not isinstance(step, Resize) or step.max_size is not None:
        return None
    if step.interpolation != InterpolationMode.BICUBIC:
        return None
    size = step.size
    if isinstance(size, int):
        return size
    return int(size[0]) if isinstance(size, list | tuple) and len(size) == 1 else None


def _shrunk(img: Image.Image, side: int) -> Image.Image:
    """``img`` at the size torchvision's ``Resize(side)`` gives it, when that is smaller."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    if short <= side:
        return img
    new_long = int(side * long / short)  # torchvision's rounding (truncation)
    return resample(img, (side, new_long) if w <= h else (new_long, side))


def preprocess_batch(preprocess: Any, images: Sequence[Image.Image]) -> torch.Tensor:
    """``torch.stack([preprocess(img.convert("RGB")) for img in images])``, with the same values.

    For open_clip's usual pipeline (PIL steps such as resize and centre crop, then ``ToTensor``
    and ``Normalize``) the PIL steps run per image and the tensor steps once on the whole batch,
    with the same operations in the same order (``/ 255``, ``- mean``, ``/ std`` in float32), so
    the values are identical; per image they cost more than the tiny CLIP forward itself. Any
    other pipeline runs per image as it is.
    """
    steps = list(preprocess.transforms) if isinstance(preprocess, Compose) else []
    tail = [i for i, step in enumerate(steps) if isinstance(step, ToTensor)]
    if len(tail) != 1 or tail[0] != len(steps) - 2 or not isinstance(steps[-1], Normalize):
        return torch.stack([preprocess(img.convert("RGB")) for img in images])
    pil_steps, normalize = steps[: tail[0]], steps[-1]
    prepared = []
    for img in images:
        out = img.convert("RGB")
        for step in pil_steps:
            out = step(out)
        prepared.append(out)
    if (
        any(not isinstance(p, Image.Image) or p.mode != "RGB" for p in prepared)
        or len({p.size for p in prepared}) != 1
    ):
        return torch.stack([preprocess(img.convert("RGB")) for img in images])
    pixels = torch.from_numpy(np.stack([np.asarray(p) for p in prepared]))
    batch = pixels.permute(0, 3, 1, 2).contiguous().to(torch.get_default_dtype()).div(255)
    mean = torch.as_tensor(normalize.mean, dtype=batch.dtype)[None, :, None, None]
    std = torch.as_tensor(normalize.std, dtype=batch.dtype)[None, :, None, None]
    return batch.sub_(mean).div_(std)
