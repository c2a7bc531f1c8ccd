"""How caption jobs reach workers: one small interface, two engines.

* :class:`EmbeddedJobQueue` (SQLite, `make serve`, no extra service): the job tables are the
  queue; a worker's :class:`~app.services.job_runner.JobRunner` polls them for photos of any job.
* :class:`ProcrastinateJobQueue` (PostgreSQL): submitting a job defers one procrastinate task in
  the same transaction that writes the job's rows, and workers run procrastinate's worker, whose
  task captions that job's photos with the same runner.

Either way the photo rows stay the source of truth (claims with leases, one recorded result per
photo), so a task that runs twice, or a queue that hands a job to two workers, captions nothing
twice. A worker killed mid-job loses its job to procrastinate's heartbeats (the task is retried
once the worker has sent none for ``jobs.lease_s``) and its photos to their leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import make_url
from sqlalchemy.orm import Session

from app.core.settings import Settings

if TYPE_CHECKING:
    import procrastinate

    from app.services.job_runner import JobRunner

log = logging.getLogger(__name__)

#: The procrastinate queue and task of caption jobs.
QUEUE = "caption-jobs"
TASK = "repic.caption_job"


class JobQueue(Protocol):
    """Where submitted jobs wait, and the worker that takes them."""

    name: str

    def enqueue(self, session: Session, job_id: str) -> None:
        """Queue ``job_id`` inside the transaction that creates its rows (``session``)."""

    async def run_worker(self, runner: JobRunner) -> None:
        """Run jobs with ``runner`` until :meth:`JobRunner.stop`."""


class EmbeddedJobQueue:
    """The job tables are the queue: nothing to enqueue, workers poll them."""

    name = "embedded"

    def enqueue(self, session: Session, job_id: str) -> None:
        """Nothing to do: the job's pending photos are what workers look for."""

    async def run_worker(self, runner: JobRunner) -> None:
        """Caption photos of every job until stopped."""
        await runner.run()


class JobInterrupted(Exception):
    """The worker stopped before the job was finished: procrastinate runs the task again."""


class ProcrastinateJobQueue:
    """Jobs as procrastinate tasks in PostgreSQL, next to the job rows."""

    name = "procrastinate"

    def __init__(self, settings: Settings) -> None:
        import procrastinate

        self.cfg = settings.jobs
        self.conninfo = libpq_conninfo(settings.database_url)
        # Deferring goes through the caller's connection (never opened: no pool of its own).
        self._deferrer = procrastinate.App(connector=procrastinate.SyncPsycopgConnector())

    def enqueue(self, session: Session, job_id: str) -> None:
        """Defer the job's task on the session's own connection: the task exists exactly when
        the job's rows are committed (a rolled-back submission leaves no task behind)."""
        connection = session.connection().connection.driver_connection
        self._deferrer.configure_task(TASK, queue=QUEUE, connection=connection).defer(job_id=job_id)

    async def run_worker(self, runner: JobRunner) -> None:
        """Run procrastinate's worker until stopped; it is started again if it fails (the
        database went away, say)."""
        while not runner.stopping:
            try:
                await self._serve(runner)
            except Exception:
                log.exception("procrastinate worker %s failed; starting it again", runner.name)
            if not runner.stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(runner.stopped(), timeout=max(self.cfg.poll_s, 1.0))

    def _app(self, runner: JobRunner) -> procrastinate.App:
        import procrastinate

        app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(conninfo=self.conninfo, min_size=1, max_size=4)
        )

        # Retried without limit: the task ends only when every photo has a result (a photo
        # that cannot be captioned gets its problem as result), so a retry follows only a stop
        # or a lost database, and gives up on nothing.
        @app.task(name=TASK, queue=QUEUE, retry=procrastinate.RetryStrategy(wait=1))
        async def caption_job(job_id: str) -> None:
            if not await runner.run(job_id):
                raise JobInterrupted(job_id)

        return app

    async def _serve(self, runner: JobRunner) -> None:
        app = self._app(runner)
        async with app.open_async():
            worker = asyncio.create_task(
                app.run_worker_async(
                    queues=[QUEUE],
                    name=runner.name,
                    concurrency=self.cfg.concurrency,
                    install_signal_handlers=False,
                    fetch_job_polling_interval=self.cfg.poll_s,
                    update_heartbeat_interval=self.cfg.lease_s / 3,
                    stalled_worker_timeout=self.cfg.lease_s,
                    # When procrastinate stops by itself (its database connection broke), it
                    # cancels the tasks still running after this; they are retried later.
                    shutdown_graceful_timeout=self.cfg.lease_s,
                )
            )
            rescuer = asyncio.create_task(self._retry_stalled(app, runner.name))
            stopped = asyncio.create_task(runner.stopped())
            try:
                await asyncio.wait({worker, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                # Cancelling procrastinate's worker stops it gracefully: the tasks it runs see
                # the runner stopping, hand their photos back and are retried later.
                await _cancel_until_done(worker)
                await _cancel_until_done(rescuer)
                results = await asyncio.gather(worker, rescuer, return_exceptions=True)
            if not runner.stopping and isinstance(results[0], BaseException):
                raise results[0]
            if not runner.stopping:
                raise RuntimeError("procrastinate's worker stopped on its own")

    async def _retry_stalled(self, app: procrastinate.App, name: str) -> None:
        """Put the tasks of workers that stopped sending heartbeats (killed) back in line."""
        manager = app.job_manager
        while True:
            try:
                stalled = await manager.get_stalled_jobs(
                    queue=QUEUE, seconds_since_heartbeat=self.cfg.lease_s
                )
                for job in stalled:
                    log.info("worker %s: retrying %s of a stalled worker", name, job.call_string)
                    await _retry(manager, job)
            except Exception:
                log.exception("worker %s cannot look for stalled caption jobs", name)
            await asyncio.sleep(self.cfg.lease_s / 3)


async def _cancel_until_done(task: asyncio.Task[Any], every_s: float = 1.0) -> None:
    """Cancel ``task`` and wait for it, cancelling again while it runs on: a cancellation that
    lands inside procrastinate or the connection pool (the worker starting, a query of the
    stalled-job rescuer) can be absorbed there, and the app's shutdown then waited for the task
    forever."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every_s)


async def _retry(manager: Any, job: Any) -> None:
    import procrastinate.exceptions

    try:
        await manager.retry_job(job)
    except procrastinate.exceptions.ConnectorException:
        # Another worker retried it first.
        log.debug("stalled %s was retried already", job.call_string)


def libpq_conninfo(database_url: str) -> str:
    """The libpq URI of a SQLAlchemy PostgreSQL URL (driver name dropped, options kept)."""
    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def build_job_queue(settings: Settings) -> JobQueue:
    """The configured queue (``REPIC_JOBS__QUEUE``; `auto` picks by the database)."""
    if settings.job_queue == "procrastinate":
        return ProcrastinateJobQueue(settings)
    return EmbeddedJobQueue()
