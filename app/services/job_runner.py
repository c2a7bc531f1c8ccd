"""The worker loop of caption jobs: claim photos, caption them concurrently, record results.

The same loop runs whichever queue hands out the jobs (:mod:`app.services.job_queue`): on every
job for the embedded queue, on one job per task for procrastinate; inside the API process
(`REPIC_JOBS__RUN_IN_API`) or in `repic worker` processes. Up to ``jobs.concurrency`` photos are
in flight at once, so that many requests reach the VLM together and vLLM can batch them. Leases
of photos in flight are renewed while they run; a killed worker's photos are claimed again once
their lease has run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from sqlalchemy.orm import Session, sessionmaker

from app.core.metrics import Metrics
from app.core.settings import JobSettings, RetrievalSettings, UploadSettings
from app.services.captioning import CaptionRequest, CaptionResult, CaptionService
from app.services.errors import DomainError, Failed, Unavailable
from app.services.intake import decode_query
from app.services.jobs import JobOptions, JobResults
from app.services.ports import Offload
from app.services.timings import Timings
from model.photos import QueryPhoto
from store.blobs import BlobError, BlobStore
from store.db import transaction
from store.jobs import Claimed, JobRepository

log = logging.getLogger(__name__)


class JobCaptions(CaptionService):
    """Captions of job photos: bounded by the job settings (active jobs per user, worker
    concurrency) rather than by the per-request caption slots, which would refuse an album's
    photos; they still take fair turns at the model with everyone's requests."""

    async def caption_photo(
        self, user_id: int, query: QueryPhoto, req: CaptionRequest, timings: Timings
    ) -> CaptionResult:
        return await self._caption(user_id, query, req, timings)


class JobRunner:
    """Captions job photos until :meth:`stop`; ``name`` identifies the worker in logs.

    :meth:`run` may run several times at once (a queue's worker runs one per job it holds):
    the loops share ``jobs.concurrency`` photo slots, so a worker process never has more
    photos in flight than that, however many jobs it works on.
    """

    def __init__(
        self,
        captions: JobCaptions,
        blobs: BlobStore,
        *,
        sessions: sessionmaker[Session],
        run: Offload,
        metrics: Metrics,
        jobs: JobSettings,
        upload: UploadSettings,
        defaults: RetrievalSettings,
        formats: JobResults,
        name: str | None = None,
    ) -> None:
        self.captions = captions
        self.blobs = blobs
        self.sessions = sessions
        self.offload = run
        self.metrics = metrics
        self.cfg = jobs
        self.upload = upload
        self.defaults = defaults
        self.formats = formats
        self.name = name or f"worker-{uuid.uuid4().hex[:8]}"
        self._busy = 0
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def stopped(self) -> None:
        """Return once :meth:`stop` was called."""
        await self._stopping.wait()

    def wake(self) -> None:
        """Look for work now (a job was just submitted in this process)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming; photos in flight are handed back (or abandoned to their lease)."""
        self._stopping.set()
        self._wake.set()

    async def run(self, job_id: str | None = None) -> bool:
        """Claim and caption photos until stopped: of every job, or of ``job_id`` only, until
        that job is finished or deleted. Whether it returned because ``job_id`` is finished."""
        log.info(
            "caption job worker %s started on %s (concurrency %d)",
            self.name,
            f"job {job_id}" if job_id else "every job",
            self.cfg.concurrency,
        )
        tasks: set[asyncio.Task[None]] = set()
        in_flight: dict[int, Claimed] = {}
        renewer = asyncio.create_task(self._renew_leases(in_flight))
        try:
            while not self._stopping.is_set():
                claimed = await self._claim(job_id)
                for c in claimed:
                    in_flight[c.item_id] = c
                    task = asyncio.create_task(self._caption(c, in_flight))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if claimed and self._busy < self.cfg.concurrency:
                    continue
                if job_id is not None and not tasks and await self._finished(job_id):
                    return True
                self._wake.clear()
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait(
                    {woken, *tasks}, timeout=self.cfg.poll_s, return_when=asyncio.FIRST_COMPLETED
                )
                woken.cancel()
            return False
        finally:
            renewer.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(renewer, *tasks, return_exceptions=True)
            await self._release(in_flight)
            log.info("caption job worker %s stopped on %s", self.name, job_id or "every job")

    async def _claim(self, job_id: str | None) -> list[Claimed]:
        """Claim photos for the free slots; the slots are taken before the claim so that two
        loops of this process never claim the same free slot."""
        free = self.cfg.concurrency - self._busy
        if free <= 0:
            return []

        def claim() -> list[Claimed]:
            with transaction(self.sessions) as session:
                return JobRepository(session).claim(free, self.cfg.lease_s, job_id)

        self._busy += free
        claimed: list[Claimed] = []
        try:
            claimed = await self.offload(claim)
        except Exception:
            log.exception("caption job worker %s cannot claim photos", self.name)
        finally:
            self._busy -= free - len(claimed)
        return claimed

    async def _finished(self, job_id: str) -> bool:
        def finished() -> bool:
            with self.sessions() as session:
                return JobRepository(session).is_finished(job_id)

        try:
            return await self.offload(finished)
        except Exception:
            log.exception("caption job worker %s cannot read job %s", self.name, job_id)
            return False

    async def _release(self, in_flight: dict[int, Claimed]) -> None:
        """Hand photos cut short by a clean stop back at once, instead of after their lease."""
        claims = list(in_flight.values())
        in_flight.clear()
        if not claims:
            return

        def release() -> None:
            with transaction(self.sessions) as session:
                JobRepository(session).release(claims)

        try:
            await self.offload(release)
        except Exception:
            log.exception("caption job worker %s cannot release its photos", self.name)

    async def _renew_leases(self, in_flight: dict[int, Claimed]) -> None:
        while True:
            await asyncio.sleep(self.cfg.lease_s / 3)
            claims = list(in_flight.values())
            if not claims:
                continue

            def renew(claims: list[Claimed] = claims) -> None:
                with transaction(self.sessions) as session:
                    JobRepository(session).renew(claims, self.cfg.lease_s)

            try:
                await self.offload(renew)
            except Exception:
                log.exception("caption job worker %s cannot renew its leases", self.name)

    async def _caption(self, claimed: Claimed, in_flight: dict[int, Claimed]) -> None:
        try:
            try:
                ok, result = await self._result(claimed)
                await self.offload(self._record, claimed, ok, result)
            except Exception:
                # The database is unreachable: the lease runs out and another try follows.
                log.exception(
                    "caption job %s photo %s: result not recorded",
                    claimed.job_id,
                    claimed.item_id,
                )
            # Not reached when cancelled: a clean stop releases the photos still in flight.
            in_flight.pop(claimed.item_id, None)
        finally:
            self._busy -= 1
            self._wake.set()

    async def _result(self, claimed: Claimed) -> tuple[bool, str]:
        options = JobOptions.model_validate_json(claimed.options)
        timings = Timings(self.metrics)
        try:
            data = await self.offload(self.blobs.get, claimed.blob_key)
            vlm = self.captions.vlm_settings
            query = await self.offload(
                decode_query,
                claimed.filename,
                data,
                max_pixels=self.upload.max_pixels,
                vlm_max_pixels=vlm.max_pixels,
                clip_min_side=self.captions.retrieval.clip_min_side(),
            )
            result = await self.captions.caption_photo(
                claimed.user_id, query, options.request(self.defaults, vlm), timings
            )
        except DomainError as exc:
            return False, self.formats.problem(exc)
        except BlobError as exc:
            unreadable = Unavailable("storage-unavailable", f"The photo is unreadable: {exc}")
            return False, self.formats.problem(unreadable)
        except Exception as exc:
            log.exception("caption job %s photo %s failed", claimed.job_id, claimed.item_id)
            problem = Failed("internal", f"Captioning this photo failed: {exc!r}")
            return False, self.formats.problem(problem)
        return True, self.formats.caption(result)

    def _record(self, claimed: Claimed, ok: bool, result: str) -> None:
        with transaction(self.sessions) as session:
            recorded = JobRepository(session).record(claimed, ok=ok, result=result)
        if not recorded:
            log.info(
                "caption job %s photo %s: claim lost (job deleted or lease taken over)",
                claimed.job_id,
                claimed.item_id,
            )


@contextlib.asynccontextmanager
async def running_jobs(runner: JobRunner, job_id: str | None = None) -> AsyncIterator[JobRunner]:
    """``runner`` running in the background for the duration of the block, on every job or on
    ``job_id`` only."""
    task = asyncio.create_task(runner.run(job_id))
    try:
        yield runner
    finally:
        runner.stop()
        await task
