"""One decode per query photo: same prompt dimensions and same retrieval ranking as decoding
real-size photos at full resolution."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model.embedder import ClipEmbedder
from model.images import fit_pixel_budget, normalize_image
from model.photos import make_derivatives, prepare_query
from model.regions import crop, propose_regions
from model.tiny.clip import TinyClip
from tests.helpers.images import photo

BUDGET = 1024 * 28 * 28
SIZES = {"0.3MP": (640, 480), "3MP": (2000, 1500), "12MP": (4032, 3024)}


@pytest.fixture(scope="module")
def embedder(tiny_clip: TinyClip) -> ClipEmbedder:
    return ClipEmbedder(str(tiny_clip.config_path), str(tiny_clip.checkpoint_path), "cpu")


@pytest.mark.parametrize("name", sorted(SIZES))
def test_prompt_dimensions_equal_the_full_resolution_path(name: str) -> None:
    data = photo(1, SIZES[name])
    full = normalize_image(data, max_pixels=10**8).to_pil()
    query = prepare_query(data, max_pixels=10**8, vlm_max_pixels=BUDGET, clip_min_side=672)
    assert (query.vlm.width, query.vlm.height) == fit_pixel_budget(full, BUDGET).size
    assert (query.width, query.height) == full.size
    assert min(query.pixels.size) >= min(672, *full.size)


def test_exif_rotated_large_photo_is_upright_at_the_same_size() -> None:
    data = photo(2, (4032, 3024), orientation=6)  # stored sideways: upright is 3024 x 4032
    full = normalize_image(data, max_pixels=10**8).to_pil()
    query = prepare_query(data, max_pixels=10**8, vlm_max_pixels=BUDGET, clip_min_side=672)
    assert full.size == (3024, 4032) == (query.width, query.height)
    assert (query.vlm.width, query.vlm.height) == fit_pixel_budget(full, BUDGET).size
    # Pixels agree closely with the full-resolution path (draft decoding + one resize).
    # The full-resolution path as it was: Pillow's bicubic filter on the fully decoded photo.
    old_img = full.resize(fit_pixel_budget(full, BUDGET).size, Image.Resampling.BICUBIC)
    old = np.asarray(old_img, dtype=np.float32)
    new = np.asarray(query.vlm.to_pil(), dtype=np.float32)
    assert np.abs(old - new).mean() < 4.0


def _concept_scores(
    embedder: ClipEmbedder, crops: list[Image.Image], refs: np.ndarray
) -> np.ndarray:
    vectors = embedder.embed(crops)
    return np.asarray((vectors @ refs.T).max(axis=0))


@pytest.fixture(scope="module")
def refs(embedder: ClipEmbedder) -> np.ndarray:
    """Six concepts' reference vectors, from photos at the stored size."""
    stored = [normalize_image(photo(s, (2048, 1536)), max_pixels=10**8) for s in range(10, 16)]
    return embedder.embed([img.to_pil() for img in stored])


@pytest.mark.parametrize("name", sorted(SIZES))
def test_retrieval_ranking_equals_the_full_resolution_path(
    name: str, embedder: ClipEmbedder, refs: np.ndarray
) -> None:
    data = photo(12, SIZES[name])  # the photo of concept 2, at this size
    full = normalize_image(data, max_pixels=10**8).to_pil()
    old = _concept_scores(embedder, [crop(full, r) for r in propose_regions(full)], refs)
    query = prepare_query(
        data, max_pixels=10**8, vlm_max_pixels=BUDGET, clip_min_side=2 * embedder.input_size
    )
    size = (query.width, query.height)
    regions = propose_regions(size)
    assert [r.box for r in regions] == [r.box for r in propose_regions(full)]
    # The service's crops: cut from the working image reduced to what CLIP needs.
    assert min(query.clip_pixels.size) == min(2 * embedder.input_size, *query.pixels.size)
    crops = [crop(query.clip_pixels, r, size) for r in regions]
    new = _concept_scores(embedder, embedder.shrink_to_input(crops), refs)  # as the service does
    assert list(np.argsort(-old)) == list(np.argsort(-new))
    np.testing.assert_allclose(new, old, atol=0.02)


def test_derivatives_fit_the_budget_and_thumbnail_side() -> None:
    stored = normalize_image(photo(3, (4032, 3024)), max_pixels=10**8, max_side=2048)
    made = make_derivatives(stored, prompt_max_pixels=BUDGET, thumbnail_side=256)
    assert made.prompt.width * made.prompt.height <= BUDGET
    assert made.prompt.width / made.prompt.height == pytest.approx(4 / 3, rel=0.01)
    assert max(made.thumbnail.width, made.thumbnail.height) == 256
    small = normalize_image(photo(4, (640, 480)), max_pixels=10**8)
    assert make_derivatives(small, prompt_max_pixels=BUDGET, thumbnail_side=256).prompt is small


def test_references_embedded_from_the_demonstration_image_rank_as_the_stored_copy(
    embedder: ClipEmbedder,
) -> None:
    """The upload embeds a reference photo from its demonstration image (see ConceptService);
    the vectors are those of the stored copy up to resampling, and queries rank them alike."""
    stored = [normalize_image(photo(s, (2000, 1500)), max_pixels=10**8) for s in range(20, 26)]
    demos = [
        make_derivatives(img, prompt_max_pixels=BUDGET, thumbnail_side=256).prompt for img in stored
    ]
    assert all(d.width < img.width for d, img in zip(demos, stored, strict=True))
    from_stored = embedder.embed([img.to_pil() for img in stored])
    from_demo = embedder.embed(embedder.shrink_to_input([d.to_pil() for d in demos]))
    cosines = np.sum(from_stored * from_demo, axis=1)
    assert cosines.min() > 0.999
    queries = embedder.embed(
        [normalize_image(photo(s, (640, 480)), max_pixels=10**8).to_pil() for s in range(20, 26)]
    )
    for q in queries:
        assert list(np.argsort(-(from_stored @ q))) == list(np.argsort(-(from_demo @ q)))
