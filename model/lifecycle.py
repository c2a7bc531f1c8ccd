"""One lifecycle for every model the service runs: load, readiness, state, unload.

A :class:`ModelLifecycle` owns what one in-process model loaded (weights, processor, device) and
the state around it: unloaded, loading, ready or failed. Loading happens once, on first use or on
an explicit :meth:`~ModelLifecycle.load` (a preload); concurrent callers wait for the one load in
progress. A failed load is remembered for ``retry_after_s`` seconds, so a missing checkpoint
costs one attempt per interval rather than one per request, and readiness says why it failed.

A model served elsewhere (the OpenAI-compatible VLM) has nothing to load in this process; it
implements the same :class:`ManagedModel` protocol by probing its server, so the application
treats every model alike.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class ModelState(StrEnum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class ModelUnavailable(RuntimeError):
    """A model cannot be loaded or reached; the message says how to fix it."""


@dataclass(frozen=True)
class ModelReadiness:
    """Where a model stands, and a human detail (what is loaded where, or why it failed)."""

    state: ModelState
    detail: str

    @property
    def ready(self) -> bool:
        return self.state is ModelState.READY


class ManagedModel(Protocol):
    """What the application needs of every model, in-process or served."""

    @property
    def probe_loads(self) -> bool:
        """Whether a readiness probe may load the model when nothing preloads it: a cheap model
        loads so that a broken checkpoint is reported, a large one waits for its preload."""

    @property
    def state(self) -> ModelState: ...

    async def aload(self) -> None:
        """Load (or reach) the model; raises :class:`ModelUnavailable` when it cannot."""

    async def areadiness(self) -> ModelReadiness:
        """Whether the model can serve now, and why not."""

    async def aunload(self) -> None:
        """Release what the model holds; the next use loads it again."""


class ModelLifecycle(Generic[T]):
    """Thread-safe lazy loading of one in-process model's resources ``T``.

    ``loader`` does the blocking load and raises :class:`ModelUnavailable` (a subclass) when the
    model cannot be loaded; other exceptions propagate without being remembered. ``describe``
    turns the loaded resources into the readiness detail; ``release`` (optional) frees them on
    :meth:`unload`. ``label`` names the model in the details of the other states.
    """

    def __init__(
        self,
        label: str,
        loader: Callable[[], T],
        describe: Callable[[T], str],
        *,
        release: Callable[[T], None] | None = None,
        retry_after_s: float = 60.0,
        probe_loads: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retry_after_s < 0:
            raise ValueError(f"retry_after_s must be 0 or more, got {retry_after_s}")
        self.label = label
        self.probe_loads = probe_loads
        self._loader = loader
        self._describe = describe
        self._release = release
        self._retry_after_s = retry_after_s
        self._clock = clock
        # Held for a whole load: one load at a time, later callers wait for its outcome.
        self._load_lock = threading.Lock()
        # Held for a state change only, so that readers never wait behind a load.
        self._state_lock = threading.Lock()
        self._state = ModelState.UNLOADED
        self._resources: T | None = None
        self._error: ModelUnavailable | None = None
        self._failed_at = 0.0

    @property
    def state(self) -> ModelState:
        """Unloaded, loading, ready or failed."""
        return self._state

    @property
    def resources(self) -> T | None:
        """What the loader returned, while the model is loaded."""
        return self._resources

    def load(self) -> T:
        """The loaded resources, loading them first if needed (blocking, thread-safe).

        Within ``retry_after_s`` of a failed load the remembered error is raised again without a
        new attempt.
        """
        loaded = self._resources
        if loaded is not None:
            return loaded
        with self._load_lock:
            loaded = self._resources
            if loaded is not None:
                return loaded
            with self._state_lock:
                error = self._error
                if error is not None and self._clock() - self._failed_at < self._retry_after_s:
                    self._state = ModelState.FAILED
                    raise error
                self._state = ModelState.LOADING
            try:
                loaded = self._loader()
            except ModelUnavailable as exc:
                with self._state_lock:
                    self._state, self._error, self._failed_at = (
                        ModelState.FAILED,
                        exc,
                        self._clock(),
                    )
                raise
            except BaseException:
                with self._state_lock:
                    self._state = ModelState.FAILED if self._error else ModelState.UNLOADED
                raise
            with self._state_lock:
                # Published last: other threads read ``_resources`` without a lock.
                self._resources, self._error = loaded, None
                self._state = ModelState.READY
            return loaded

    async def aload(self) -> T:
        """:meth:`load` in a worker thread, so the event loop keeps serving meanwhile."""
        loaded = self._resources
        if loaded is not None:
            return loaded
        with self._state_lock:
            if self._state is ModelState.UNLOADED:
                # Visible at once, before the worker thread gets to run.
                self._state = ModelState.LOADING
        try:
            return await asyncio.to_thread(self.load)
        except asyncio.CancelledError:
            # The thread may never have started: then no load is in progress.
            if not self._load_lock.locked():
                with self._state_lock:
                    if self._state is ModelState.LOADING and self._resources is None:
                        self._state = ModelState.UNLOADED
            raise

    def unload(self) -> None:
        """Drop the resources (after a load in progress) and forget any remembered failure."""
        with self._load_lock:
            with self._state_lock:
                loaded, self._resources = self._resources, None
                self._state, self._error = ModelState.UNLOADED, None
            if loaded is not None and self._release is not None:
                self._release(loaded)

    def readiness(self) -> ModelReadiness:
        """The state with its detail: what is loaded where, or why loading failed."""
        with self._state_lock:
            state, loaded, error = self._state, self._resources, self._error
        if state is ModelState.READY and loaded is not None:
            return ModelReadiness(state, self._describe(loaded))
        if state is ModelState.FAILED and error is not None:
            return ModelReadiness(state, f"failed: {error}")
        if state is ModelState.LOADING:
            return ModelReadiness(state, f"loading {self.label}")
        return ModelReadiness(ModelState.UNLOADED, f"{self.label} not loaded (loads on first use)")


class LifecycleModel(Generic[T]):
    """The :class:`ManagedModel` protocol of an in-process model kept in ``self.lifecycle``."""

    lifecycle: ModelLifecycle[T]

    @property
    def probe_loads(self) -> bool:
        """See :attr:`ManagedModel.probe_loads`."""
        return self.lifecycle.probe_loads

    @property
    def state(self) -> ModelState:
        """Unloaded, loading, ready or failed."""
        return self.lifecycle.state

    async def aload(self) -> None:
        """Load the model in a worker thread unless loaded; raises :class:`ModelUnavailable`."""
        await self.lifecycle.aload()

    async def areadiness(self) -> ModelReadiness:
        """The lifecycle's state and detail (never loads)."""
        return self.lifecycle.readiness()

    async def aunload(self) -> None:
        """Drop the model in a worker thread (after a load in progress)."""
        await asyncio.to_thread(self.lifecycle.unload)
