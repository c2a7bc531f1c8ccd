"""Per-request stage timings: reported in the response and observed in the stage histogram."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from app.core.metrics import Metrics, Stage


@dataclass
class Timings:
    metrics: Metrics
    ms: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: Stage) -> Iterator[None]:
        """Time a block (failures included) under ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.ms[name] = self.ms.get(name, 0.0) + seconds * 1000
            self.metrics.observe_stage(name, seconds)
