"""`POST /caption` with ``stream=true``: the caption as Server-Sent Events while it is written.

Everything up to the prompt (decode, retrieval) happens before the response starts, so a bad
photo or an unknown concept is still an ordinary problem response. Then the stream carries
(as the route renders the events of :meth:`StreamingCaptionService.caption_events`):

- ``event: delta``, ``data: {"text": "..."}`` for each piece of text the model writes;
- ``event: result``, ``data:`` the body `POST /caption` would have answered (caption, concepts
  used and mentioned, timings);
- or ``event: problem``, ``data:`` an RFC 9457 problem, when generation fails midway.

The client going away closes the backend's stream, which stops the generation upstream.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from typing import cast

from app.services.captioning import (
    CaptionRequest,
    CaptionResult,
    CaptionService,
    _mentioned,
    _vlm_problem,
    cache_salt,
    public_model_name,
)
from app.services.errors import DomainError, NotSupported
from app.services.timings import Timings
from model.photos import QueryPhoto
from model.vlm.base import Generation, VLMError
from model.vlm.streaming import Delta, StreamingVLM

log = logging.getLogger(__name__)

#: What the stream of one caption carries: text deltas, then the result or the error that
#: ended it (a stream has started, so an error is an event rather than a raised exception).
CaptionEvent = Delta | CaptionResult | DomainError


class StreamingCaptionService(CaptionService):
    async def caption_events(
        self, user_id: int, query: QueryPhoto, req: CaptionRequest, timings: Timings, start: float
    ) -> AsyncGenerator[CaptionEvent]:
        """Prepare the prompt (errors raise here), then return the stream of events."""
        vlm = self.vlm
        if not isinstance(vlm, StreamingVLM):
            raise NotSupported(
                "streaming-unsupported", "This captioning backend cannot stream; omit stream."
            )
        # The caption holds one of the user's caption slots until its stream ends: a refusal
        # (429) is an ordinary problem response, before the stream starts.
        held = contextlib.AsyncExitStack()
        await held.enter_async_context(self.caption_slots.hold(user_id))
        try:
            prepared = await self.run(self._prepare, user_id, query, req, timings)
        except BaseException:
            await held.aclose()
            raise

        async def events() -> AsyncGenerator[CaptionEvent]:
            generation: Generation | None = None
            async with held:
                try:
                    async with self.vlm_gate.turn(user_id):
                        vlm_start = time.perf_counter()
                        stream = vlm.stream(
                            prepared.prompt,
                            max_tokens=req.max_tokens,
                            cache_salt=cache_salt(user_id),
                        )
                        async with contextlib.aclosing(
                            cast(AsyncGenerator[Delta | Generation], stream)
                        ):
                            async for item in stream:
                                if isinstance(item, Delta):
                                    yield item
                                else:
                                    generation = item
                except VLMError as exc:
                    self.metrics.count_vlm_error(exc.kind)
                    yield _vlm_problem(exc, vlm.model_name)
                    return
            if generation is None:
                return
            timings.ms["vlm"] = (time.perf_counter() - vlm_start) * 1000
            timings.ms["total"] = (time.perf_counter() - start) * 1000
            yield CaptionResult(
                caption=generation.text,
                used=prepared.used,
                mentioned=_mentioned(generation.text, prepared.names),
                model=public_model_name(self.vlm_settings),
                timings_ms=timings.ms,
            )

        return events()
