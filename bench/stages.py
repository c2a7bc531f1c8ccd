"""What each CPU step of a caption request costs on its own, in the benchmark's process before
any server starts: the floor the per-stage numbers under load are compared with."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from model.embedder import ClipEmbedder
from model.images import NormalizedImage, normalize_image
from model.prompt import Demo, build_repic_messages
from model.regions import crop, propose_regions
from model.tiny.clip import TinyClip
from model.vlm.openai_backend import to_openai_messages

_REPS = 50
_UPLOAD_MAX_PIXELS = 40_000_000


def _p50_ms(fn: Callable[[], object]) -> float:
    fn()
    out = []
    for _ in range(_REPS):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(out, 50))


@dataclass(frozen=True)
class StageCosts:
    decode: float
    regions: float
    embed: float
    prompt: float
    body: float
    crops: int

    def rows(self) -> list[tuple[str, float]]:
        return [
            ("decode: `normalize_image` of the query (JPEG decode + re-encode)", self.decode),
            (f"regions: propose {self.crops} boxes and crop them", self.regions),
            (f"embed: tiny CLIP, one batch of {self.crops} crops", self.embed),
            ("prompt: `build_repic_messages` (no resize needed)", self.prompt),
            ("request body: `to_openai_messages` (base64, sha256) + `json.dumps`", self.body),
        ]


def measure_stage_costs(clip: TinyClip, query: bytes, ref_a: bytes, ref_b: bytes) -> StageCosts:
    """Median cost of each step of one caption request, without any concurrency."""
    torch.set_num_threads(1)  # as the service runs CLIP when the VLM is remote
    embedder = ClipEmbedder(str(clip.config_path), str(clip.checkpoint_path), "cpu")
    embedder.load()
    normalized = normalize_image(query, max_pixels=_UPLOAD_MAX_PIXELS)
    pil = normalized.to_pil()
    regions = propose_regions(pil)
    crops = [crop(pil, r) for r in regions]
    demos = [
        Demo(name, "info", normalize_image(ref, max_pixels=_UPLOAD_MAX_PIXELS))
        for name, ref in (("bo", ref_a), ("thao", ref_b))
    ]

    def body() -> bytes:
        # Fresh images, as in a request: their sha256 is not cached yet.
        fresh = [Demo(d.name, d.info, NormalizedImage(d.image.data, 1, 1)) for d in demos]
        prompt = build_repic_messages(fresh, NormalizedImage(normalized.data, 1, 1))
        return json.dumps(to_openai_messages(prompt)).encode()

    return StageCosts(
        decode=_p50_ms(lambda: normalize_image(query, max_pixels=_UPLOAD_MAX_PIXELS)),
        regions=_p50_ms(lambda: [crop(pil, r) for r in propose_regions(normalized.to_pil())]),
        embed=_p50_ms(lambda: embedder.embed(crops)),
        prompt=_p50_ms(lambda: build_repic_messages(demos, normalized)),
        body=_p50_ms(body),
        crops=len(crops),
    )
