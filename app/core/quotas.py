"""Per-user request rate, caption concurrency and fair turns at the captioning model.

All three live in this process (one uvicorn worker per container is the supported setup): with
several replicas each enforces its own share.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.services.errors import TooMany


def too_many(detail: str, retry_after_s: float) -> TooMany:
    return TooMany("rate-limited", detail, retry_after_s=max(1, math.ceil(retry_after_s)))


class RateLimiter:
    """A token bucket per user: ``burst`` requests at once, refilled at ``per_minute``."""

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._buckets: dict[int, tuple[float, float]] = {}

    def check(self, user_id: int) -> None:
        """Take one token for ``user_id`` or raise :class:`TooMany` saying when to retry."""
        now = time.monotonic()
        tokens, last = self._buckets.get(user_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[user_id] = (tokens, now)
            raise too_many(
                f"Too many requests: at most {self.rate * 60:.0f} per minute (bursts of "
                f"{self.burst:.0f}). Wait for Retry-After seconds.",
                (1.0 - tokens) / self.rate,
            )
        self._buckets[user_id] = (tokens - 1.0, now)


class CaptionSlots:
    """At most ``per_user`` captions of one user in flight; more are refused, not queued."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._in_flight: dict[int, int] = {}

    @asynccontextmanager
    async def hold(self, user_id: int) -> AsyncIterator[None]:
        current = self._in_flight.get(user_id, 0)
        if current >= self.per_user:
            raise too_many(
                f"You already have {current} captions in progress (the limit is "
                f"{self.per_user}); wait for one to finish.",
                5,
            )
        self._in_flight[user_id] = current + 1
        try:
            yield
        finally:
            left = self._in_flight[user_id] - 1
            if left:
                self._in_flight[user_id] = left
            else:
                del self._in_flight[user_id]


class FairGate:
    """``capacity`` turns at the model; when callers wait, the next turn goes to the waiting
    user served longest ago (never served first), each user's own requests in arrival order.

    First come, first served would let one user's burst of long captions delay everyone else by
    the whole burst; here a user waits for at most one turn of each other waiting user.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._active = 0
        self._waiting: dict[int, deque[asyncio.Future[None]]] = {}
        self._served_at: dict[int, int] = {}
        self._holding: dict[int, int] = {}
        self._clock = 0

    @asynccontextmanager
    async def turn(self, user_id: int) -> AsyncIterator[None]:
        if self._active < self.capacity and not self._waiting:
            self._active += 1
            self._start(user_id)
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(user_id, deque()).append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._finish(user_id)  # the turn was handed over just as we were cancelled
                else:
                    self._forget(user_id, waiter)
                raise
        try:
            yield
        finally:
            self._finish(user_id)

    def _start(self, user_id: int) -> None:
        self._clock += 1
        self._served_at[user_id] = self._clock
        self._holding[user_id] = self._holding.get(user_id, 0) + 1

    def _forget(self, user_id: int, waiter: asyncio.Future[None]) -> None:
        queue = self._waiting.get(user_id)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._waiting[user_id]

    def _finish(self, user_id: int) -> None:
        left = self._holding.get(user_id, 1) - 1
        if left:
            self._holding[user_id] = left
        else:
            self._holding.pop(user_id, None)
            if user_id not in self._waiting:
                self._served_at.pop(user_id, None)
        while self._waiting:
            # dicts keep insertion order: among equals, the user who started waiting first.
            user = min(self._waiting, key=lambda u: self._served_at.get(u, -1))
            queue = self._waiting[user]
            waiter = queue.popleft()
            if not queue:
                del self._waiting[user]
            if not waiter.done():
                self._start(user)
                waiter.set_result(None)  # the turn passes on; _active is unchanged
                return
        self._active -= 1
