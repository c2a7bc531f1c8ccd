"""`POST /caption` with ``stream=true``: the caption as Server-Sent Events while it is written.

Everything up to the prompt (decode, retrieval) happens before the response starts, so a bad
photo or an unknown concept is still an ordinary problem response. Then the stream carries:

- ``event: delta``, ``data: {"text": "..."}`` for each piece of text the model writes;
- ``event: result``, ``data:`` the body `POST /caption` would have answered (caption, concepts
  used and mentioned, timings);
- or ``event: problem``, ``data:`` an RFC 9457 problem, when generation fails midway.

The client going away closes the backend's stream, which stops the generation upstream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import cast

from app.problems import ProblemError
from app.schemas import CaptionPublic
from app.services.captioning import (
    CaptionRequest,
    CaptionResult,
    CaptionService,
    _mentioned,
    _vlm_problem,
    cache_salt,
    public_model_name,
)
from app.services.jobs import problem_json
from app.services.timings import Timings
from model.photos import QueryPhoto
from model.vlm.base import Generation, VLMError
from model.vlm.streaming import Delta, StreamingVLM

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"


def sse(event: str, data: str) -> bytes:
    """One Server-Sent Event (``data`` is one line of JSON)."""
    return f"event: {event}\ndata: {data}\n\n".encode()


class StreamingCaptionService(CaptionService):
    async def caption_events(
        self,
        user_id: int,
        query: QueryPhoto,
        req: CaptionRequest,
        timings: Timings,
        start: float,
        finish: Callable[[CaptionPublic], Awaitable[CaptionPublic]] | None = None,
    ) -> AsyncIterator[bytes]:
        """Prepare the prompt (problems raise here), then return the event stream; ``finish``
        (keeping the caption) turns the result into the body of the ``result`` event."""
        vlm = self.rt.vlm
        if not isinstance(vlm, StreamingVLM):
            raise ProblemError(
                501, "streaming-unsupported", "This captioning backend cannot stream; omit stream."
            )
        # The caption holds one of the user's caption slots until its stream ends: a refusal
        # (429) is an ordinary problem response, before the stream starts.
        held = contextlib.AsyncExitStack()
        await held.enter_async_context(self.rt.caption_slots.hold(user_id))
        try:
            prepared = await self.rt.run(self._prepare, user_id, query, req, timings)
        except BaseException:
            await held.aclose()
            raise

        async def events() -> AsyncIterator[bytes]:
            generation: Generation | None = None
            async with held:
                try:
                    async with self.rt.vlm_gate.turn(user_id):
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
                                    yield sse("delta", json.dumps({"text": item.text}))
                                else:
                                    generation = item
                except VLMError as exc:
                    self.rt.metrics.count_vlm_error(exc.kind)
                    yield sse("problem", problem_json(_vlm_problem(exc, vlm.model_name)))
                    return
            if generation is None:
                return
            timings.ms["vlm"] = (time.perf_counter() - vlm_start) * 1000
            timings.ms["total"] = (time.perf_counter() - start) * 1000
            result = CaptionResult(
                caption=generation.text,
                used=prepared.used,
                mentioned=_mentioned(generation.text, prepared.names),
                model=public_model_name(self.rt.settings),
                timings_ms=timings.ms,
            )
            body = result.public()
            if finish is not None:
                try:
                    body = await finish(body)
                except ProblemError as exc:
                    yield sse("problem", problem_json(exc))
                    return
            yield sse("result", body.model_dump_json())

        return events()
