"""`POST /caption` as one pass: decode -> retrieve (or take the named concepts) -> RePIC
prompt -> VLM -> which concepts the caption names. A caption request stores nothing."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.problems import ProblemError
from app.runtime import Runtime
from app.schemas import CaptionPublic, ConceptRef, ConceptUsed
from app.services.retrieval import Match, RetrievalService
from app.services.timings import Timings
from app.settings import Settings
from model.grounding import ConceptName, find_mentions
from model.images import NormalizedImage
from model.prompt import Demo, PromptStyle, RepicPrompt, build_repic_messages
from model.vlm.base import Generation, VLMBadRequest, VLMError, VLMTimeout, VLMUnavailable
from store.blobs import BlobError
from store.repositories import ConceptRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptionRequest:
    top_k: int
    min_score: float
    concept_ids: Sequence[int] | None
    instruction: str | None
    max_tokens: int
    style: PromptStyle

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        top_k: int | None = None,
        min_score: float | None = None,
        concept_ids: Sequence[int] | None = None,
        instruction: str | None = None,
        max_tokens: int | None = None,
        style: PromptStyle = PromptStyle.REPIC,
    ) -> CaptionRequest:
        """A request whose omitted options take the configured defaults."""
        return cls(
            top_k=top_k or settings.retrieval.top_k,
            min_score=settings.retrieval.min_score if min_score is None else min_score,
            concept_ids=concept_ids or None,
            instruction=instruction,
            max_tokens=max_tokens or settings.vlm.max_tokens,
            style=style,
        )


@dataclass(frozen=True)
class CaptionResult:
    caption: str
    used: list[Match]
    mentioned: list[tuple[int, str]]
    model: str
    timings_ms: dict[str, float]

    def public(self) -> CaptionPublic:
        """The response body of `POST /caption` (and `repic caption --json`)."""
        return CaptionPublic(
            caption=self.caption,
            concepts_used=[
                ConceptUsed(
                    id=m.concept.id,
                    name=m.concept.name,
                    score=None if math.isnan(m.score) else m.score,
                )
                for m in self.used
            ],
            concepts_mentioned=[ConceptRef(id=i, name=n) for i, n in self.mentioned],
            model=self.model,
            timings_ms={k: round(v, 3) for k, v in self.timings_ms.items()},
        )


def public_model_name(settings: Settings) -> str:
    """The model name callers see: never a path of the server's file system."""
    cfg = settings.vlm
    if cfg.public_name:
        return cfg.public_name
    model = cfg.model.rstrip("/\\")
    looks_like_path = (
        model.startswith((".", "/", "~"))
        or "\\" in model
        or model.count("/") > 1
        or Path(model).expanduser().exists()
    )
    return model.replace("\\", "/").rsplit("/", 1)[-1] if looks_like_path else model


def cache_salt(user_id: int) -> str:
    """A per-user prefix-cache salt: one user's cached blocks never serve another's prompt."""
    return hashlib.sha256(f"repic-user:{user_id}".encode()).hexdigest()[:32]


class CaptionService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.retrieval = RetrievalService(runtime)

    async def caption(
        self, user_id: int, query: NormalizedImage, req: CaptionRequest, timings: Timings
    ) -> CaptionResult:
        async with self.rt.caption_slots.hold(user_id):
            return await self._caption(user_id, query, req, timings)

    async def _caption(
        self, user_id: int, query: NormalizedImage, req: CaptionRequest, timings: Timings
    ) -> CaptionResult:
        if req.concept_ids:
            used = await self.rt.run(self.retrieval.named, user_id, req.concept_ids, query, timings)
        else:
            used = await self.rt.run(
                lambda: self.retrieval.retrieve(
                    user_id, query, top_k=req.top_k, min_score=req.min_score, timings=timings
                )
            )
        with timings.stage("prompt"):
            prompt = await self.rt.run(self._prompt, used, query, req)
        async with self.rt.vlm_gate.turn(user_id):
            with timings.stage("vlm"):
                generation = await self._generate(prompt, req.max_tokens, user_id)
        names = await self.rt.run(self._concept_names, user_id)
        mentioned = _mentioned(generation.text, names)
        return CaptionResult(
            caption=generation.text,
            used=used,
            mentioned=mentioned,
            model=public_model_name(self.rt.settings),
            timings_ms=timings.ms,
        )

    def _prompt(
        self, used: list[Match], query: NormalizedImage, req: CaptionRequest
    ) -> RepicPrompt:
        demos = []
        for m in used:
            try:
                data = self.rt.blobs.get(m.image.blob_key)
            except BlobError as exc:
                raise ProblemError(
                    503,
                    "storage-unavailable",
                    f"A reference image of <{m.concept.name}> cannot be read ({exc}); "
                    "operators: check REPIC_DATA_DIR.",
                    headers={"Retry-After": "30"},
                ) from exc
            image = NormalizedImage(data=data, width=m.image.width, height=m.image.height)
            demos.append(Demo(name=m.concept.name, info=m.concept.info, image=image))
        cfg = self.rt.settings.vlm
        return build_repic_messages(
            demos,
            query,
            instruction=req.instruction,
            style=req.style,
            max_pixels=cfg.max_pixels,
            demo_max_pixels=cfg.demo_max_pixels,
        )

    async def _generate(self, prompt: RepicPrompt, max_tokens: int, user_id: int) -> Generation:
        try:
            return await self.rt.vlm.generate(
                prompt, max_tokens=max_tokens, cache_salt=cache_salt(user_id)
            )
        except VLMError as exc:
            self.rt.metrics.count_vlm_error(exc.kind)
            raise _vlm_problem(exc, self.rt.vlm.model_name) from exc

    def _concept_names(self, user_id: int) -> list[tuple[int, str]]:
        with self.rt.sessions() as session:
            return ConceptRepository(session).names(user_id)


def _mentioned(caption: str, names: list[tuple[int, str]]) -> list[tuple[int, str]]:
    by_key = {name.casefold(): (cid, name) for cid, name in names}
    found = find_mentions(caption, [ConceptName(name) for _, name in names])
    seen: dict[int, tuple[int, str]] = {}
    for mention in found:
        hit = by_key.get(mention.name.casefold())
        if hit is not None:
            seen.setdefault(hit[0], hit)
    return list(seen.values())


def _vlm_problem(exc: VLMError, model: str) -> ProblemError:
    if isinstance(exc, VLMTimeout):
        return ProblemError(
            504,
            "vlm-timeout",
            f"The captioning model ({model}) did not answer in time: {exc}. Retry, perhaps with a "
            "smaller max_tokens; operators: check REPIC_VLM__TIMEOUT_S and the model server load.",
        )
    if isinstance(exc, VLMBadRequest):
        return ProblemError(
            502,
            "vlm-bad-request",
            f"The captioning model ({model}) refused the request: {exc}. Operators: check that "
            "the vLLM flags (--limit-mm-per-prompt, --max-model-len) fit top_k and the pixel "
            "budget.",
        )
    detail = f"The captioning model ({model}) is unavailable: {exc}. Retry later."
    if not isinstance(exc, VLMUnavailable):
        detail = f"The captioning model ({model}) failed: {exc}. Retry later."
    return ProblemError(503, "vlm-unavailable", detail, headers={"Retry-After": "30"})
