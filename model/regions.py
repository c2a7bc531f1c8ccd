"""Where to look in a query photo: the whole image, grid and centre crops, optional OWLv2 boxes.

RePIC's retrieval embeds detector crops and merges their hits. Its detector (YOLO-World) is AGPL
and finds nothing on many photos, so our default needs no detector: the whole image is always
the first region, then grid tiles and a centre crop catch a concept that fills only part of the
frame. :class:`Owlv2Proposer` (Apache-2.0, via transformers) may add boxes for text queries such
as the user's concept categories.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from model.lifecycle import LifecycleModel, ModelLifecycle, ModelReadiness, ModelUnavailable

if TYPE_CHECKING:
    import torch

Box = tuple[int, int, int, int]


class DetectorUnavailable(ModelUnavailable):
    """The configured detector cannot be loaded; the message says how to fix it."""


@dataclass(frozen=True)
class Region:
    """A pixel box ``(x0, y0, x1, y1)`` (right and bottom exclusive) and where it came from."""

    box: Box
    label: str


def _keep(regions: list[Region], region: Region) -> None:
    x0, y0, x1, y1 = region.box
    if x1 > x0 and y1 > y0 and all(r.box != region.box for r in regions):
        regions.append(region)


def propose_regions(
    img: Image.Image | tuple[int, int], *, grids: Sequence[int] = (2,), center: bool = True
) -> list[Region]:
    """Whole image first, then an ``n x n`` tiling for each ``n`` in ``grids``, then the centre.

    ``img`` is the image or just its ``(width, height)``: boxes are in those coordinates. The
    centre crop spans the middle half of each side. Empty or repeated boxes (tiny images,
    ``n = 1``) are left out, so every returned region is a distinct, non-empty crop.
    """
    if any(n < 1 for n in grids):
        raise ValueError(f"grid sizes must be at least 1, got {list(grids)}")
    width, height = img.size if isinstance(img, Image.Image) else img
    regions: list[Region] = []
    _keep(regions, Region((0, 0, width, height), "whole"))
    for n in grids:
        xs = [round(i * width / n) for i in range(n + 1)]
        ys = [round(j * height / n) for j in range(n + 1)]
        for row in range(n):
            for col in range(n):
                box = (xs[col], ys[row], xs[col + 1], ys[row + 1])
                _keep(regions, Region(box, f"grid{n}:r{row}c{col}"))
    if center:
        box = (width // 4, height // 4, width - width // 4, height - height // 4)
        _keep(regions, Region(box, "center"))
    return regions


def crop(img: Image.Image, region: Region, full_size: tuple[int, int] | None = None) -> Image.Image:
    """The pixels of ``region`` as a new image.

    ``full_size`` is the size the box refers to when ``img`` is a downscaled copy of that image
    (the box is scaled onto ``img``, never to less than one pixel).
    """
    if full_size is None or full_size == img.size:
        return img.crop(region.box)
    sx, sy = img.width / full_size[0], img.height / full_size[1]
    x0, y0, x1, y1 = region.box
    left, top = math.floor(x0 * sx), math.floor(y0 * sy)
    right = min(img.width, max(left + 1, math.ceil(x1 * sx)))
    bottom = min(img.height, max(top + 1, math.ceil(y1 * sy)))
    return img.crop((left, top, right, bottom))


def scale_region(region: Region, factor: float) -> Region:
    """``region`` with its box multiplied by ``factor`` (boxes found on a scaled copy)."""
    x0, y0, x1, y1 = (round(v * factor) for v in region.box)
    return Region((x0, y0, x1, y1), region.label)


@dataclass(frozen=True)
class _Loaded:
    model: Any
    processor: Any


class Owlv2Proposer(LifecycleModel[_Loaded]):
    """Open-vocabulary boxes from OWLv2 for text queries, loaded lazily from a hub id or directory
    (a :class:`~model.lifecycle.ModelLifecycle`: a failed load is retried after ``retry_after_s``).

    Boxes scoring at least ``threshold`` are de-duplicated across queries (non-maximum suppression
    at ``nms_iou``), smaller than ``min_side`` pixels dropped, and at most ``max_regions`` of the
    best kept, since every region costs one more embedding.
    """

    def __init__(
        self,
        model_id_or_dir: str,
        threshold: float = 0.1,
        *,
        max_regions: int = 8,
        nms_iou: float = 0.5,
        min_side: int = 8,
        device: str = "cpu",
        retry_after_s: float = 60.0,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        if max_regions < 1:
            raise ValueError(f"max_regions must be at least 1, got {max_regions}")
        self.source = model_id_or_dir
        self.threshold = threshold
        self.max_regions = max_regions
        self.nms_iou = nms_iou
        self.min_side = min_side
        self._device = device
        self.lifecycle = ModelLifecycle(
            f"OWLv2 detector {model_id_or_dir}",
            self._load_blocking,
            lambda _: f"OWLv2 detector {model_id_or_dir} on {device}",
            retry_after_s=retry_after_s,
        )

    def load(self) -> None:
        """Load processor and model once; raises :class:`DetectorUnavailable` if they cannot be."""
        self.lifecycle.load()

    def readiness(self) -> ModelReadiness:
        """Whether the detector is loaded, loading, not yet loaded, or failed (and why)."""
        return self.lifecycle.readiness()

    def _load_blocking(self) -> _Loaded:
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        try:
            processor = Owlv2Processor.from_pretrained(self.source)
            model = Owlv2ForObjectDetection.from_pretrained(self.source)
        except (OSError, ValueError) as exc:
            raise DetectorUnavailable(
                f"Could not load the OWLv2 detector {self.source!r}: {exc}. To run offline, "
                "save model and processor once where the network is reachable "
                "(save_pretrained into one directory) and set REPIC_REGIONS__DETECTOR_MODEL "
                "to that directory, or set REPIC_REGIONS__DETECTOR=none."
            ) from exc
        ready: Any = model
        ready.to(self._device).eval()
        return _Loaded(ready, processor)

    def propose(self, img: Image.Image, queries: Sequence[str]) -> list[Region]:
        """Boxes for ``queries`` in ``img``, best first, labelled ``owlv2:<query>``."""
        texts = list(dict.fromkeys(q.strip() for q in queries if q.strip()))
        if not texts:
            return []
        import torch

        loaded = self.lifecycle.load()
        rgb = img.convert("RGB")
        width, height = rgb.size
        inputs = loaded.processor(
            text=[texts], images=rgb, return_tensors="pt", truncation=True
        ).to(self._device)
        with torch.inference_mode():
            outputs = loaded.model(**inputs)
        # OWLv2 pads the image to a square at the bottom and right; boxes are relative to it.
        side = max(width, height)
        found = loaded.processor.post_process_grounded_object_detection(
            outputs, threshold=self.threshold, target_sizes=[(side, side)]
        )[0]
        return self._select(found["boxes"], found["scores"], found["labels"], texts, width, height)

    def _select(
        self,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        labels: torch.Tensor,
        texts: list[str],
        width: int,
        height: int,
    ) -> list[Region]:
        import torch
        from torchvision.ops import nms

        limits = torch.tensor([width, height, width, height], dtype=boxes.dtype)
        boxes = boxes.float().clamp(min=torch.zeros(4), max=limits.float())
        regions: list[Region] = []
        for i in nms(boxes, scores.float(), self.nms_iou).tolist():
            x0, y0, x1, y1 = (round(v) for v in boxes[i].tolist())
            if x1 - x0 < self.min_side or y1 - y0 < self.min_side:
                continue
            _keep(regions, Region((x0, y0, x1, y1), f"owlv2:{texts[int(labels[i])]}"))
            if len(regions) == self.max_regions:
                break
        return regions
