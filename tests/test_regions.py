"""Region proposals: grid and centre crops, and OWLv2 boxes from a tiny random detector."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from PIL import Image
from tokenizers.pre_tokenizers import ByteLevel
from transformers import (
    CLIPTokenizer,
    Owlv2Config,
    Owlv2ForObjectDetection,
    Owlv2ImageProcessor,
    Owlv2Processor,
)

from app.core.migrate import upgrade
from app.core.runtime import Runtime
from app.core.settings import RegionSettings, Settings
from app.main import create_app
from model.lifecycle import ModelState
from model.regions import DetectorUnavailable, Owlv2Proposer, Region, crop, propose_regions
from tests.helpers.api import admin_headers


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def test_default_is_whole_then_2x2_grid_then_centre() -> None:
    regions = propose_regions(Image.new("RGB", (200, 121)))
    assert [r.label for r in regions] == [
        "whole",
        "grid2:r0c0",
        "grid2:r0c1",
        "grid2:r1c0",
        "grid2:r1c1",
        "center",
    ]
    assert regions[0].box == (0, 0, 200, 121)
    assert regions[-1].box == (50, 30, 150, 91)
    tiles = [r.box for r in regions[1:5]]
    assert sum(_area(b) for b in tiles) == 200 * 121  # the tiles cover the image exactly once
    assert tiles[0] == (0, 0, 100, 60)
    assert tiles[3] == (100, 60, 200, 121)


def test_several_grids_and_no_centre() -> None:
    regions = propose_regions(Image.new("RGB", (90, 90)), grids=(2, 3), center=False)
    assert len(regions) == 1 + 4 + 9
    assert len({r.box for r in regions}) == len(regions)
    assert regions[-1] == Region((60, 60, 90, 90), "grid3:r2c2")


def test_whole_image_only() -> None:
    regions = propose_regions(Image.new("RGB", (30, 20)), grids=(), center=False)
    assert regions == [Region((0, 0, 30, 20), "whole")]


def test_tiny_image_has_no_empty_or_repeated_crops() -> None:
    regions = propose_regions(Image.new("RGB", (1, 1)), grids=(1, 2))
    assert regions == [Region((0, 0, 1, 1), "whole")]


def test_grid_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        propose_regions(Image.new("RGB", (10, 10)), grids=(0,))


def test_crops_have_the_box_size_and_pixels() -> None:
    img = Image.new("RGB", (64, 48), (0, 0, 0))
    img.paste((255, 0, 0), (32, 24, 64, 48))
    regions = propose_regions(img)
    for region in regions:
        x0, y0, x1, y1 = region.box
        assert crop(img, region).size == (x1 - x0, y1 - y0)
    bottom_right = next(r for r in regions if r.label == "grid2:r1c1")
    assert crop(img, bottom_right).getcolors() == [(32 * 24, (255, 0, 0))]


@pytest.fixture(scope="module")
def tiny_owlv2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random OWLv2 with a byte-level CLIP tokenizer (no merges), saved like a hub download."""
    vocab: dict[str, int] = {}
    for char in sorted(ByteLevel.alphabet()):
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    # OWL treats a query whose first token id is 0 as padding, so the specials go last, as in CLIP.
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    config = Owlv2Config(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,
        },
        projection_dim=32,
    )
    torch.manual_seed(0)
    model = Owlv2ForObjectDetection(config)
    # A random box head predicts slivers; zeroed, each patch predicts its own cell (the prior).
    torch.nn.init.zeros_(model.box_head.dense2.weight)
    torch.nn.init.zeros_(model.box_head.dense2.bias)
    processor = Owlv2Processor(  # type: ignore[no-untyped-call]
        image_processor=Owlv2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tokenizer
    )
    out = tmp_path_factory.mktemp("owlv2")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def test_owlv2_boxes_lie_inside_the_image(tiny_owlv2: Path) -> None:
    proposer = Owlv2Proposer(str(tiny_owlv2), threshold=0.0, max_regions=20)
    img = Image.new("RGB", (200, 120), (200, 30, 30))
    regions = proposer.propose(img, ["dog", "plush toy", "dog", "  "])
    assert regions
    assert len(regions) <= 20
    for region in regions:
        x0, y0, x1, y1 = region.box
        assert 0 <= x0 < x1 <= 200
        assert 0 <= y0 < y1 <= 120
        assert min(x1 - x0, y1 - y0) >= proposer.min_side
        assert region.label in {"owlv2:dog", "owlv2:plush toy"}
    assert len({r.box for r in regions}) == len(regions)


def test_owlv2_limits_and_threshold(tiny_owlv2: Path) -> None:
    img = Image.new("RGB", (96, 96))
    assert (
        len(Owlv2Proposer(str(tiny_owlv2), threshold=0.0, max_regions=3).propose(img, ["cat"])) == 3
    )
    assert Owlv2Proposer(str(tiny_owlv2), threshold=1.0).propose(img, ["cat"]) == []
    assert Owlv2Proposer(str(tiny_owlv2), threshold=0.0).propose(img, []) == []


def test_owlv2_missing_model_is_unavailable_with_fix(tmp_path: Path) -> None:
    proposer = Owlv2Proposer(str(tmp_path / "no-detector"))
    with pytest.raises(DetectorUnavailable, match="REPIC_REGIONS__DETECTOR_MODEL"):
        proposer.propose(Image.new("RGB", (32, 32)), ["dog"])


_SETTLING = (ModelState.UNLOADED, ModelState.LOADING)


async def _readyz(settings: Settings, **changes: object) -> tuple[int, dict[str, Any], Runtime]:
    """`GET /readyz` (with details) of an app started with ``changes`` to the settings."""
    upgrade(settings.database_url)
    changed = settings.model_copy(update=changes)
    application = create_app(changed)
    async with application.router.lifespan_context(application):
        runtime: Runtime = application.state.runtime
        if changed.preload_models:
            # The preload runs in the background; readiness only reports what it did.
            for _ in range(1200):  # at most a minute
                if runtime.models()["detector"].state not in _SETTLING:
                    break
                await asyncio.sleep(0.05)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            resp = await client.get("/readyz", headers=admin_headers())
    return resp.status_code, resp.json()["components"], runtime


def _owlv2(directory: Path | str) -> RegionSettings:
    return RegionSettings(detector="owlv2", detector_model=str(directory))


async def test_readyz_reports_the_detector(settings: Settings, tiny_owlv2: Path) -> None:
    _, components, _ = await _readyz(settings, regions=_owlv2(tiny_owlv2))
    assert components["detector"]["ready"] is True
    assert str(tiny_owlv2) in components["detector"]["detail"]


async def test_readyz_reports_a_missing_detector_with_the_fix(
    settings: Settings, tmp_path: Path
) -> None:
    status, components, _ = await _readyz(settings, regions=_owlv2(tmp_path / "no-detector"))
    assert status == 503
    assert components["detector"]["ready"] is False
    assert "REPIC_REGIONS__DETECTOR_MODEL" in components["detector"]["detail"]


async def test_without_a_detector_readyz_has_no_detector(settings: Settings) -> None:
    _, components, _ = await _readyz(settings)
    assert "detector" not in components
    assert components["embedder"]["ready"] is True


async def test_preload_loads_the_detector(settings: Settings, tiny_owlv2: Path) -> None:
    _, components, runtime = await _readyz(
        settings, regions=_owlv2(tiny_owlv2), preload_models=True
    )
    assert runtime.detector is not None and components["detector"]["ready"] is True
    # Preloaded at start-up: the probe found the embedder loaded without loading it itself.
    assert components["embedder"]["ready"] is True
