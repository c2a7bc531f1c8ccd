"""The one-decode floor of a caption's photo work: what any service must do with the query at
least, measured in the benchmark's own process.

It includes, for one query photo: one decode (JPEG draft mode to no less than the size the
consumers need, EXIF transpose), one resize to the working size, the crops, the CLIP forward of
those crops with its preprocessing (``ClipEmbedder.embed``, one thread), and one JPEG encode of
the image sent to the VLM. It leaves out everything a request adds around that work: HTTP and
multipart parsing, authentication, SQL, the index search, the prompt, thread hand-offs, logs and
metrics.
"""

from __future__ import annotations

from collections.abc import Callable

from model.embedder import ClipEmbedder
from model.photos import prepare_query
from model.regions import crop, propose_regions


def photo_floor(
    data: bytes,
    embedder: ClipEmbedder,
    *,
    max_pixels: int,
    vlm_max_pixels: int,
    grids: tuple[int, ...] = (2,),
    center: bool = True,
) -> Callable[[], int]:
    """A function doing the floor's work for ``data`` once (it returns the VLM image's size in
    bytes, so nothing is optimised away). Crops and working size follow the service's rules
    for the same region settings."""
    smallest = max([*grids, 2 if center else 1])
    clip_min_side = embedder.input_size * smallest

    def run() -> int:
        query = prepare_query(
            data,
            max_pixels=max_pixels,
            vlm_max_pixels=vlm_max_pixels,
            clip_min_side=clip_min_side,
        )
        full = (query.width, query.height)
        regions = propose_regions(full, grids=grids, center=center)
        embedder.embed([crop(query.pixels, r, full) for r in regions])
        return len(query.vlm.data)

    return run
