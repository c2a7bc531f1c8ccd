"""The two sides of the cross-process race between an upload and a delete of the same photo.

Run in two processes by ``tests/test_blob_gc.py``: each builds its own runtime on the shared
database and blob store, as two API replicas do, and they meet at a barrier every round.
"""

from __future__ import annotations

import random
import time
from threading import Barrier

from app.core import wiring
from app.core.blob_gc import sweep_blobs
from app.core.runtime import build_runtime
from app.core.settings import Settings
from model.images import normalize_image
from tests.helpers import images

FIRST_SEED = 5000


def photo(round_no: int) -> bytes:
    return images.pattern(FIRST_SEED + round_no)


def uploader(settings: Settings, user_id: int, rounds: int, barrier: Barrier) -> list[int]:
    """Each round: upload the round's photo as a new concept while the other side deletes it.
    Returns the ids of the concepts created (every one must keep its photo)."""
    runtime = build_runtime(settings)
    service = wiring.concepts(runtime)
    rng = random.Random(1)
    created = []
    for r in range(rounds):
        img = normalize_image(photo(r), max_pixels=10**7)
        barrier.wait()
        time.sleep(rng.uniform(0, 0.02))
        concept = service.create(user_id, name=f"a{r}", info="", category=None, images=[img])
        created.append(concept.id)
        barrier.wait()
    runtime.engine.dispose()
    return created


def deleter(settings: Settings, user_id: int, rounds: int, barrier: Barrier) -> int:
    """Each round: hold the photo in a concept, then delete it and sweep with no grace period
    at a random moment of the other side's upload. Returns how many blobs the sweeps deleted."""
    runtime = build_runtime(settings)
    service = wiring.concepts(runtime)
    rng = random.Random(2)
    deleted = 0
    for r in range(rounds):
        img = normalize_image(photo(r), max_pixels=10**7)
        concept = service.create(user_id, name=f"b{r}", info="", category=None, images=[img])
        barrier.wait()
        time.sleep(rng.uniform(0, 0.03))
        service.delete(user_id, concept.id)
        deleted += sweep_blobs(runtime, grace_s=0, orphans=False).deleted
        barrier.wait()
        deleted += sweep_blobs(runtime, grace_s=0, orphans=False).deleted
    runtime.engine.dispose()
    return deleted
