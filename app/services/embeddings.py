"""The CLIP embedder as the services use it: timed, its failures turned into domain errors.

The model itself (:class:`model.embedder.ClipEmbedder`) belongs to the runtime, next to the other
models; the vector store only needs its identity (which model made a vector, and its width).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from PIL import Image

from app.core.metrics import Metrics
from app.services.errors import Unavailable
from app.services.timings import Timings
from model.embedder import ClipEmbedder, EmbedderUnavailable


class Embeddings:
    def __init__(self, embedder: ClipEmbedder, metrics: Metrics) -> None:
        self.embedder = embedder
        self._metrics = metrics

    @property
    def embedder_id(self) -> str:
        """The id stored with every vector this embedder makes."""
        with _as_domain_error():
            return self.embedder.model_id

    @property
    def dim(self) -> int:
        """Width of the vectors."""
        with _as_domain_error():
            return self.embedder.dim

    @property
    def input_size(self) -> int:
        """Side of the embedder's square input image."""
        with _as_domain_error():
            return self.embedder.input_size

    def embed(self, images: Sequence[Image.Image], timings: Timings | None = None) -> np.ndarray:
        """L2-normalised vectors for ``images`` (one batched forward), or :class:`Unavailable`."""
        with _as_domain_error(), (timings or Timings(self._metrics)).stage("embed"):
            return self.embedder.embed(images)

    def embed_photos(
        self, images: Sequence[Image.Image], timings: Timings | None = None
    ) -> np.ndarray:
        """:meth:`embed` after reducing each image to the embedder's input size with the service's
        resize (``ClipEmbedder.shrink_to_input``): same vectors up to resampling, a fraction of the
        preprocessing time for photos far larger than the input."""
        with _as_domain_error(), (timings or Timings(self._metrics)).stage("embed"):
            return self.embedder.embed(self.embedder.shrink_to_input(images))


@contextmanager
def _as_domain_error() -> Iterator[None]:
    try:
        yield
    except EmbedderUnavailable as exc:
        raise embedder_problem(exc) from exc


def embedder_problem(exc: EmbedderUnavailable) -> Unavailable:
    return Unavailable(
        "embedder-unavailable",
        f"The image embedder is not available, so nothing was stored: {exc}",
        retry_after_s=60,
    )
