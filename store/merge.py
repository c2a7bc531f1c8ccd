"""Merging the hits of a photo's query regions into the concepts a caption uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from store.index import Hit


@dataclass(frozen=True)
class RetrievedConcept:
    """A concept chosen for a caption: its best-matching image, score and query region."""

    concept_id: int
    image_id: int
    score: float
    region_index: int


def merge_region_hits(
    per_region_hits: Sequence[Sequence[Hit]], *, top_k: int, min_score: float
) -> list[RetrievedConcept]:
    """Merge the hits of all query regions into at most ``top_k`` distinct concepts.

    All hits are ranked by score (ties keep region order, then rank within the region), each
    concept keeps its best hit, hits below ``min_score`` are dropped, and the first ``top_k``
    concepts remain. Region 0 is the whole image, so it wins ties against crops.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    ranked = sorted(
        ((hit, region) for region, hits in enumerate(per_region_hits) for hit in hits),
        key=lambda pair: -pair[0].score,
    )
    chosen: dict[int, RetrievedConcept] = {}
    for hit, region in ranked:
        if hit.score < min_score or len(chosen) == top_k:
            break
        if hit.concept_id not in chosen:
            chosen[hit.concept_id] = RetrievedConcept(
                hit.concept_id, hit.image_id, hit.score, region
            )
    return list(chosen.values())
