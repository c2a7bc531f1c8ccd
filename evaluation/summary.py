"""What a run achieved, per mode: grounding scores, retrieval recall@k and latency percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from evaluation.database import DatabaseConcept, ground_truth_pool
from evaluation.runner import Mode, RunRow
from model.grounding_scores import GroundingSample, GroundingScores, Matcher, score_grounding

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class ModeSummary:
    """Scores of one mode. ``recall_at_k`` is the fraction of ground-truth concepts the service
    put in the prompt (``concepts_used``); in skip-retrieval mode it checks that the named
    concepts were really used and should be 1.0."""

    mode: Mode
    robust: GroundingScores
    official: GroundingScores
    recall_at_k: float
    latency_ms: dict[int, float]

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": str(self.mode),
            "robust": self.robust.as_dict(),
            "official": self.official.as_dict(),
            "recall_at_k": self.recall_at_k,
            "latency_ms": {f"p{p}": v for p, v in self.latency_ms.items()},
        }


def summarise(rows: Sequence[RunRow], concepts: Sequence[DatabaseConcept]) -> list[ModeSummary]:
    """One summary per mode present in ``rows`` (the first row of a repeated pair counts).

    The candidate pool is the ground-truth concepts of the rows, with display names from
    ``concepts``: the same numbers ``repic eval grounding --database`` gives for the file.
    """
    first: dict[tuple[str, Mode], RunRow] = {}
    for row in rows:
        first.setdefault(row.key, row)
    unique = list(first.values())
    pool = ground_truth_pool((c for row in unique for c in row.concepts), concepts)
    summaries = []
    for mode in Mode:
        mode_rows = [row for row in unique if row.mode is mode]
        if not mode_rows:
            continue
        samples = [
            GroundingSample(row.caption, tuple(f"<{c}>" for c in row.concepts)) for row in mode_rows
        ]
        latencies = [row.latency_ms for row in mode_rows]
        summaries.append(
            ModeSummary(
                mode=mode,
                robust=score_grounding(samples, matcher=Matcher.ROBUST, pool=pool),
                official=score_grounding(samples, matcher=Matcher.OFFICIAL, pool=pool),
                recall_at_k=retrieval_recall(mode_rows),
                latency_ms={p: percentile(latencies, p) for p in PERCENTILES},
            )
        )
    return summaries


def retrieval_recall(rows: Sequence[RunRow]) -> float:
    """Micro-averaged fraction of ground-truth concepts found among each row's concepts used."""
    found = total = 0
    for row in rows:
        used = {name.casefold() for name in row.used_names()}
        found += sum(concept.casefold() in used for concept in row.concepts)
        total += len(row.concepts)
    return found / total if total else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile, linear between closest ranks (numpy's default); NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
