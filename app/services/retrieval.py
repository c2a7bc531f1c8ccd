"""Which of the user's concepts appear in a photo: regions -> one batched embedding -> the
user's own FAISS index -> merged, de-duplicated, floored top-k (DESIGN.md §2 steps 3-5)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from app.problems import ProblemError
from app.runtime import Runtime
from app.services.timings import Timings
from model.images import NormalizedImage
from model.regions import Box, DetectorUnavailable, Region, crop, propose_regions
from store.index import merge_region_hits
from store.models import Concept, ConceptImage
from store.repositories import ConceptRepository, decode_embedding

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Match:
    """A concept chosen for a query, with its best-matching reference image."""

    concept: Concept
    image: ConceptImage
    score: float
    box: Box | None


class RetrievalService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    def retrieve(
        self,
        user_id: int,
        query: NormalizedImage,
        *,
        top_k: int,
        min_score: float,
        timings: Timings | None = None,
    ) -> list[Match]:
        """The user's top-``top_k`` concepts in ``query`` scoring at least ``min_score``."""
        pil = query.to_pil()
        regions = self._regions(user_id, pil)
        vectors = self.rt.vectors.embed([crop(pil, r) for r in regions], timings)
        # Enough neighbours per region that top_k distinct concepts survive de-duplication
        # even when every concept has the maximum number of reference images.
        k = top_k * self.rt.settings.upload.max_images_per_concept
        hits = self.rt.vectors.search(user_id, vectors, k, timings)
        chosen = merge_region_hits(hits, top_k=top_k, min_score=min_score)
        with self.rt.sessions() as session:
            repo = ConceptRepository(session)
            concepts = {c.id: c for c in repo.get_many(user_id, [c.concept_id for c in chosen])}
            images = repo.images_by_ids(user_id, [c.image_id for c in chosen])
        return [
            Match(
                concepts[c.concept_id],
                images[c.image_id],
                # Cosines of float32 unit vectors can land a rounding step above 1.
                min(1.0, max(-1.0, c.score)),
                regions[c.region_index].box,
            )
            for c in chosen
            if c.concept_id in concepts and c.image_id in images
        ]

    def named(
        self,
        user_id: int,
        concept_ids: Sequence[int],
        query: NormalizedImage,
        timings: Timings | None = None,
    ) -> list[Match]:
        """Skip-retrieval: exactly these concepts, each shown with its reference image most
        similar to the query. Unknown or foreign ids are a 404, listing them."""
        unique = list(dict.fromkeys(concept_ids))
        with self.rt.sessions() as session:
            concepts = ConceptRepository(session).get_many(user_id, unique)
        missing = sorted(set(unique) - {c.id for c in concepts})
        if missing:
            raise ProblemError(
                404,
                "not-found",
                f"Concepts {missing} do not exist (or are not yours); see GET /concepts.",
            )
        needs_choice = any(len(c.images) > 1 for c in concepts)
        query_vec = self.rt.vectors.embed([query.to_pil()], timings)[0] if needs_choice else None
        return [self._best_image(c, query_vec) for c in concepts]

    def _best_image(self, concept: Concept, query_vec: np.ndarray | None) -> Match:
        best, best_score = concept.images[0], float("nan")
        if query_vec is not None:
            for img in concept.images:
                vec = decode_embedding(img)
                if vec is None or vec.shape != query_vec.shape:
                    continue
                score = float(vec @ query_vec)
                if not best_score >= score:  # also replaces the initial NaN
                    best, best_score = img, score
        # Named concepts have no retrieval score: the similarity only picked the demo image.
        return Match(concept, best, float("nan"), None)

    def _regions(self, user_id: int, pil: Image.Image) -> list[Region]:
        cfg = self.rt.settings.regions
        regions = propose_regions(pil, grids=cfg.grids, center=cfg.center)
        if self.rt.detector is not None:
            with self.rt.sessions() as session:
                categories = [
                    c.category or c.name for c in ConceptRepository(session).all_for_user(user_id)
                ]
            try:
                regions += self.rt.detector.propose(pil, categories)
            except DetectorUnavailable as exc:
                raise ProblemError(
                    503,
                    "detector-unavailable",
                    f"The region detector is not available: {exc}. Set "
                    "REPIC_REGIONS__DETECTOR=none to use grid crops only.",
                    headers={"Retry-After": "60"},
                ) from exc
        return regions
