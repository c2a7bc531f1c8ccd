"""`POST /caption` as one pass: decode -> retrieve (or take the named concepts) -> RePIC
prompt -> VLM -> which concepts the caption names. A caption request stores nothing.

Everything before the VLM call (retrieval, the concept names for grounding, the prompt) runs in
one worker-thread hand-off with one database session; demonstration images are the derivatives
stored at upload, so no reference photo is decoded or re-encoded per caption.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.core.metrics import Metrics
from app.core.quotas import CaptionSlots, FairGate
from app.core.settings import RetrievalSettings, VLMSettings
from app.services.errors import DomainError, Unavailable, UpstreamRefused, UpstreamTimeout
from app.services.ports import Offload
from app.services.retrieval import Match, RetrievalService
from app.services.timings import Timings
from model.grounding import ConceptName, find_mentions
from model.images import NormalizedImage
from model.photos import QueryPhoto
from model.prompt import Demo, PromptStyle, RepicPrompt, build_repic_messages
from model.vlm.base import (
    Generation,
    VLMBackend,
    VLMBadRequest,
    VLMError,
    VLMTimeout,
    VLMUnavailable,
)
from store.blobs import BlobError, BlobStore
from store.models import ConceptImage
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
        retrieval: RetrievalSettings,
        vlm: VLMSettings,
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
            top_k=top_k or retrieval.top_k,
            min_score=retrieval.min_score if min_score is None else min_score,
            concept_ids=concept_ids or None,
            instruction=instruction,
            max_tokens=max_tokens or vlm.max_tokens,
            style=style,
        )


@dataclass(frozen=True)
class CaptionResult:
    caption: str
    used: list[Match]
    mentioned: list[tuple[int, str]]
    model: str
    timings_ms: dict[str, float]


@dataclass(frozen=True)
class _Prepared:
    used: list[Match]
    names: list[tuple[int, str, str | None]]
    prompt: RepicPrompt


def public_model_name(cfg: VLMSettings) -> str:
    """The model name callers see: never a path of the server's file system."""
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


@functools.lru_cache(maxsize=4096)
def cache_salt(user_id: int) -> str:
    """A per-user prefix-cache salt: one user's cached blocks never serve another's prompt."""
    return hashlib.sha256(f"repic-user:{user_id}".encode()).hexdigest()[:32]


class CaptionService:
    def __init__(
        self,
        retrieval: RetrievalService,
        *,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        vlm: VLMBackend,
        vlm_settings: VLMSettings,
        metrics: Metrics,
        run: Offload,
        caption_slots: CaptionSlots,
        vlm_gate: FairGate,
    ) -> None:
        self.retrieval = retrieval
        self.sessions = sessions
        self.blobs = blobs
        self.vlm = vlm
        self.vlm_settings = vlm_settings
        self.metrics = metrics
        self.run = run
        self.caption_slots = caption_slots
        self.vlm_gate = vlm_gate

    async def caption(
        self, user_id: int, query: QueryPhoto, req: CaptionRequest, timings: Timings
    ) -> CaptionResult:
        async with self.caption_slots.hold(user_id):
            return await self._caption(user_id, query, req, timings)

    async def _caption(
        self, user_id: int, query: QueryPhoto, req: CaptionRequest, timings: Timings
    ) -> CaptionResult:
        prepared = await self.run(self._prepare, user_id, query, req, timings)
        async with self.vlm_gate.turn(user_id):
            with timings.stage("vlm"):
                generation = await self._generate(prepared.prompt, req.max_tokens, user_id)
        return CaptionResult(
            caption=generation.text,
            used=prepared.used,
            mentioned=_mentioned(generation.text, prepared.names),
            model=public_model_name(self.vlm_settings),
            timings_ms=timings.ms,
        )

    def _prepare(
        self, user_id: int, query: QueryPhoto, req: CaptionRequest, timings: Timings
    ) -> _Prepared:
        """Retrieval, the names for grounding and the prompt: one thread, one session."""
        with self.sessions() as session:
            if req.concept_ids:
                used = self.retrieval.named(user_id, req.concept_ids, query, timings, session)
            else:
                used = self.retrieval.retrieve(
                    user_id,
                    query,
                    top_k=req.top_k,
                    min_score=req.min_score,
                    timings=timings,
                    session=session,
                )
            names = ConceptRepository(session).names(user_id)
        with timings.stage("prompt"):
            prompt = self._prompt(used, query, req)
        return _Prepared(used, names, prompt)

    def _prompt(self, used: list[Match], query: QueryPhoto, req: CaptionRequest) -> RepicPrompt:
        demos = []
        for m in used:
            try:
                image = self._demo_image(m.image)
            except BlobError as exc:
                raise Unavailable(
                    "storage-unavailable",
                    f"A reference image of <{m.concept.name}> cannot be read ({exc}); "
                    "operators: check the blob store (REPIC_DATA_DIR or REPIC_STORAGE__S3_*).",
                    retry_after_s=30,
                ) from exc
            # The model is shown the display name, as RePIC's retriever shows `name`.
            shown = m.concept.display_name or m.concept.name
            demos.append(Demo(name=shown, info=m.concept.info, image=image))
        cfg = self.vlm_settings
        return build_repic_messages(
            demos,
            query.vlm,
            instruction=req.instruction,
            style=req.style,
            max_pixels=cfg.max_pixels,
            demo_max_pixels=cfg.demo_max_pixels,
        )

    def _demo_image(self, row: ConceptImage) -> NormalizedImage:
        """The demonstration image stored at upload; the photo itself for older rows (the
        prompt builder then fits it to the budget, as every caption did before derivatives)."""
        budget = self.vlm_settings.demo_max_pixels
        if (
            row.prompt_blob_key is not None
            and row.prompt_max_pixels == budget
            and row.prompt_width is not None
            and row.prompt_height is not None
        ):
            data = self.blobs.get(row.prompt_blob_key)
            return NormalizedImage(data=data, width=row.prompt_width, height=row.prompt_height)
        log.warning(
            "image %s has no demonstration image for this budget; run `repic derivatives`", row.id
        )
        return NormalizedImage(
            data=self.blobs.get(row.blob_key), width=row.width, height=row.height
        )

    async def _generate(self, prompt: RepicPrompt, max_tokens: int, user_id: int) -> Generation:
        try:
            return await self.vlm.generate(
                prompt, max_tokens=max_tokens, cache_salt=cache_salt(user_id)
            )
        except VLMError as exc:
            self.metrics.count_vlm_error(exc.kind)
            raise _vlm_problem(exc, self.vlm.model_name) from exc


def _mentioned(caption: str, names: list[tuple[int, str, str | None]]) -> list[tuple[int, str]]:
    """The concepts ``caption`` names, by name or display name (robust matcher)."""
    by_key = {name.casefold(): (cid, name) for cid, name, _ in names}
    found = find_mentions(
        caption,
        [ConceptName(name, (display,) if display else ()) for _, name, display in names],
    )
    seen: dict[int, tuple[int, str]] = {}
    for mention in found:
        hit = by_key.get(mention.name.casefold())
        if hit is not None:
            seen.setdefault(hit[0], hit)
    return list(seen.values())


def _vlm_problem(exc: VLMError, model: str) -> DomainError:
    if isinstance(exc, VLMTimeout):
        return UpstreamTimeout(
            "vlm-timeout",
            f"The captioning model ({model}) did not answer in time: {exc}. Retry, perhaps with a "
            "smaller max_tokens; operators: check REPIC_VLM__TIMEOUT_S and the model server load.",
        )
    if isinstance(exc, VLMBadRequest):
        return UpstreamRefused(
            "vlm-bad-request",
            f"The captioning model ({model}) refused the request: {exc}. Operators: check that "
            "the vLLM flags (--limit-mm-per-prompt, --max-model-len) fit top_k and the pixel "
            "budget.",
        )
    detail = f"The captioning model ({model}) is unavailable: {exc}. Retry later."
    if not isinstance(exc, VLMUnavailable):
        detail = f"The captioning model ({model}) failed: {exc}. Retry later."
    return Unavailable("vlm-unavailable", detail, retry_after_s=30)
