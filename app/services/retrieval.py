"""Which of the user's concepts appear in a photo: regions -> one batched embedding -> the
user's own FAISS index -> merged, de-duplicated, floored top-k (steps 3-5 of a caption in
docs/ARCHITECTURE.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.core.settings import RegionSettings
from app.services.embeddings import Embeddings
from app.services.errors import NotFound, Unavailable
from app.services.timings import Timings
from app.services.vectors import VectorStore
from model.photos import QueryPhoto
from model.regions import (
    Box,
    DetectorUnavailable,
    Owlv2Proposer,
    Region,
    crop,
    propose_regions,
    scale_region,
)
from store.merge import merge_region_hits
from store.models import Concept, ConceptImage
from store.repositories import ConceptRepository, UserRepository, decode_embedding

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Match:
    """A concept chosen for a query, with its best-matching reference image."""

    concept: Concept
    image: ConceptImage
    score: float
    box: Box | None


class RetrievalService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        embeddings: Embeddings,
        vectors: VectorStore,
        *,
        regions: RegionSettings,
        max_images_per_concept: int,
        detector: Owlv2Proposer | None = None,
    ) -> None:
        self.sessions = sessions
        self.embeddings = embeddings
        self.vectors = vectors
        self.regions = regions
        self.max_images_per_concept = max_images_per_concept
        self.detector = detector

    def clip_min_side(self) -> int:
        """Shorter side a query's working image needs: its smallest grid or centre crop must
        still cover the embedder's input, as a full-resolution crop would."""
        cfg = self.regions
        smallest = max([*cfg.grids, 2 if cfg.center else 1])
        return self.embeddings.input_size * smallest

    def retrieve(
        self,
        user_id: int,
        query: QueryPhoto,
        *,
        top_k: int,
        min_score: float,
        timings: Timings | None = None,
        session: Session | None = None,
    ) -> list[Match]:
        """The user's top-``top_k`` concepts in ``query`` scoring at least ``min_score``.

        Uses ``session`` when given (a caption's one session), else opens one. Boxes are in the
        photo's full-size coordinates; crops are cut from the working image.
        """
        if session is None:
            with self.sessions() as own:
                return self.retrieve(
                    user_id, query, top_k=top_k, min_score=min_score, timings=timings, session=own
                )
        repo = ConceptRepository(session)
        regions = self._regions(repo, user_id, query)
        full = (query.width, query.height)
        vectors = self.embeddings.embed_photos(
            [crop(query.clip_pixels, r, full) for r in regions], timings
        )
        # Enough neighbours per region that top_k distinct concepts survive de-duplication
        # even when every concept has the maximum number of reference images.
        k = top_k * self.max_images_per_concept
        version = UserRepository(session).index_version(user_id)
        hits = self.vectors.search(user_id, vectors, k, timings, version=version)
        chosen = merge_region_hits(hits, top_k=top_k, min_score=min_score)
        if not chosen:
            return []
        concepts = {
            c.id: c
            for c in repo.get_many(user_id, [c.concept_id for c in chosen], with_images=False)
        }
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
        query: QueryPhoto,
        timings: Timings | None = None,
        session: Session | None = None,
    ) -> list[Match]:
        """Skip-retrieval: exactly these concepts, each shown with its reference image most
        similar to the query. Unknown or foreign ids are a 404, listing them."""
        if session is None:
            with self.sessions() as own:
                return self.named(user_id, concept_ids, query, timings, own)
        unique = list(dict.fromkeys(concept_ids))
        concepts = ConceptRepository(session).get_many(user_id, unique)
        missing = sorted(set(unique) - {c.id for c in concepts})
        if missing:
            raise NotFound(
                "not-found",
                f"Concepts {missing} do not exist (or are not yours); see GET /concepts.",
            )
        needs_choice = any(len(c.images) > 1 for c in concepts)
        query_vec = (
            self.embeddings.embed_photos([query.clip_pixels], timings)[0] if needs_choice else None
        )
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

    def _regions(self, repo: ConceptRepository, user_id: int, query: QueryPhoto) -> list[Region]:
        cfg = self.regions
        regions = propose_regions((query.width, query.height), grids=cfg.grids, center=cfg.center)
        if self.detector is not None:
            categories = repo.categories(user_id)
            try:
                found = self.detector.propose(query.pixels, categories)
            except DetectorUnavailable as exc:
                raise Unavailable(
                    "detector-unavailable",
                    f"The region detector is not available: {exc}. Set "
                    "REPIC_REGIONS__DETECTOR=none to use grid crops only.",
                    retry_after_s=60,
                ) from exc
            regions += [scale_region(r, 1 / query.scale) for r in found]
        return regions
