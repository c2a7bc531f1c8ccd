"""ClipEmbedder on a tiny random CLIP loaded through open_clip's real ``pretrained=<file>`` path."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from PIL import Image

from model.embedder import ClipEmbedder, EmbedderUnavailable, _resolve, preprocess_batch
from model.lifecycle import ModelState
from model.tiny.clip import TinyClip, build_tiny_clip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyClip:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="module")
def embedder(tiny: TinyClip) -> ClipEmbedder:
    return ClipEmbedder(str(tiny.config_path), str(tiny.checkpoint_path), device="cpu")


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    sizes = [(64, 64), (120, 80), (33, 200), (300, 300), (50, 90)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def test_embed_returns_unit_rows_of_config_dim(embedder: ClipEmbedder) -> None:
    images = _images()
    images.append(images[0].convert("L"))  # grey input is converted, not refused
    vectors = embedder.embed(images)
    assert vectors.shape == (6, 32)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.dim == 32
    assert embedder.readiness().state is ModelState.READY


def test_empty_input_gives_empty_matrix(embedder: ClipEmbedder) -> None:
    assert embedder.embed([]).shape == (0, 32)


def test_same_image_gives_identical_vectors(embedder: ClipEmbedder) -> None:
    image = _images()[1]
    first = embedder.embed([image, image])
    again = embedder.embed([image, image])
    np.testing.assert_array_equal(first[0], first[1])
    np.testing.assert_array_equal(first, again)


def test_batched_equals_one_at_a_time(tiny: TinyClip) -> None:
    chunked = ClipEmbedder(str(tiny.config_path), str(tiny.checkpoint_path), "cpu", batch_size=2)
    images = _images()
    batched = chunked.embed(images)
    single = np.concatenate([chunked.embed([img]) for img in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    # Different images must give different vectors, or the comparison above proves nothing.
    assert not np.allclose(batched[0], batched[1], atol=1e-3)


def test_batched_preprocessing_gives_the_pipelines_exact_values(embedder: ClipEmbedder) -> None:
    # The tensor steps run once per batch instead of once per image: not one value may move,
    # or query vectors would drift from the stored ones.
    embedder.load()
    preprocess = embedder.lifecycle.load().preprocess
    # open_clip's pipeline, so the batched branch (not the per-image one) is what is compared.
    assert [type(t).__name__ for t in preprocess.transforms][-2:] == ["MaybeToTensor", "Normalize"]
    images = _images()
    images.append(images[1].convert("L"))
    one_by_one = torch.stack([preprocess(img.convert("RGB")) for img in images])
    batched = preprocess_batch(preprocess, images)
    assert batched.dtype == one_by_one.dtype == torch.float32
    assert torch.equal(batched, one_by_one)


def test_weights_come_from_the_checkpoint(tiny: TinyClip, tmp_path: Path) -> None:
    other = build_tiny_clip(tmp_path, seed=1)
    image = _images()[:1]
    ours = ClipEmbedder(str(tiny.config_path), str(tiny.checkpoint_path), "cpu").embed(image)
    theirs = ClipEmbedder(str(other.config_path), str(other.checkpoint_path), "cpu").embed(image)
    assert not np.allclose(ours, theirs, atol=1e-3)


def test_checkpoint_directory_is_accepted(tiny: TinyClip) -> None:
    from_dir = ClipEmbedder(str(tiny.config_path), str(tiny.checkpoint_path.parent), "cpu")
    from_file = ClipEmbedder(str(tiny.config_path), str(tiny.checkpoint_path), "cpu")
    assert from_dir.model_id == from_file.model_id
    np.testing.assert_array_equal(from_dir.embed(_images()[:1]), from_file.embed(_images()[:1]))


def test_model_id_names_config_and_checkpoint_content(tiny: TinyClip, tmp_path: Path) -> None:
    model_id = ClipEmbedder(str(tiny.config_path), str(tiny.checkpoint_path)).model_id
    config_hash = hashlib.sha256(tiny.config_path.read_bytes()).hexdigest()[:12]
    weights_hash = hashlib.sha256(tiny.checkpoint_path.read_bytes()).hexdigest()[:16]
    assert model_id == f"open_clip:repic-tiny-clip@{config_hash}:sha256-{weights_hash}"
    assert ClipEmbedder(str(tiny.config_path), str(tiny.checkpoint_path)).model_id == model_id
    retrained = build_tiny_clip(tmp_path, seed=3)
    assert ClipEmbedder(str(retrained.config_path), str(retrained.checkpoint_path)).model_id != (
        model_id
    )


def test_tag_model_id_and_random_weights_ids() -> None:
    assert ClipEmbedder("ViT-L-14-336", "openai").model_id == "open_clip:ViT-L-14-336:openai"
    assert ClipEmbedder("ViT-L-14-336", "openai").dim == 768
    assert ClipEmbedder("ViT-L-14-336", "OpenAI").model_id == "open_clip:ViT-L-14-336:openai"
    first, second = ClipEmbedder("ViT-B-32", None), ClipEmbedder("ViT-B-32", None)
    assert first.model_id.startswith("open_clip:ViT-B-32:random-")
    assert first.model_id != second.model_id


def test_openai_weights_get_the_activation_they_were_trained_with() -> None:
    # Without QuickGELU the OpenAI weights load cleanly but give subtly wrong embeddings.
    assert _resolve("ViT-L-14-336", "openai").force_quick_gelu
    assert not _resolve("ViT-B-32-quickgelu", "openai").force_quick_gelu  # config says so already
    assert not _resolve("ViT-B-32", "laion2b_s34b_b79k").force_quick_gelu


def test_missing_checkpoint_is_unavailable_with_fix(tiny: TinyClip, tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    embedder = ClipEmbedder(str(tiny.config_path), str(missing), "cpu")
    with pytest.raises(EmbedderUnavailable) as info:
        embedder.embed(_images()[:1])
    message = str(info.value)
    assert "nope.safetensors" in message
    assert "REPIC_EMBEDDER__PRETRAINED" in message
    assert "Hugging Face cache" in message
    readiness = embedder.readiness()
    assert readiness.state is ModelState.FAILED
    assert not readiness.ready
    assert "nope.safetensors" in readiness.detail


def test_failed_load_is_retried_only_after_the_interval(tiny: TinyClip, tmp_path: Path) -> None:
    late = tmp_path / "late.safetensors"
    patient = ClipEmbedder(str(tiny.config_path), str(late), "cpu", retry_after_s=3600)
    eager = ClipEmbedder(str(tiny.config_path), str(late), "cpu", retry_after_s=0)
    for embedder in (patient, eager):
        with pytest.raises(EmbedderUnavailable):
            embedder.load()
    late.write_bytes(tiny.checkpoint_path.read_bytes())
    with pytest.raises(EmbedderUnavailable):
        patient.load()  # inside the interval: the remembered error, no new attempt
    eager.load()
    assert eager.readiness().ready


def test_tag_not_in_cache_offline_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    embedder = ClipEmbedder("ViT-L-14-336", "openai", "cpu", cache_dir=tmp_path)
    with pytest.raises(EmbedderUnavailable) as info:
        embedder.load()
    assert "ViT-L-14-336" in str(info.value)
    assert "REPIC_EMBEDDER__PRETRAINED" in str(info.value)


@pytest.mark.parametrize(
    ("model", "pretrained", "needle"),
    [
        ("ViT-Nope-1", "openai", "not an open_clip architecture"),
        ("hf-hub:org/model", "openai", "architecture name"),
        ("ViT-B-32", "no-such-tag", "neither a pretrained tag"),
    ],
)
def test_bad_settings_are_unavailable(model: str, pretrained: str, needle: str) -> None:
    with pytest.raises(EmbedderUnavailable, match=needle):
        _ = ClipEmbedder(model, pretrained).model_id


def test_unreadable_config_is_unavailable(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(EmbedderUnavailable, match="not valid JSON"):
        _ = ClipEmbedder(str(broken), None).model_id
    broken.write_text('["embed_dim", "vision_cfg", "text_cfg"]', encoding="utf-8")
    with pytest.raises(EmbedderUnavailable, match="not an open_clip model config"):
        _ = ClipEmbedder(str(broken), None).model_id
    with pytest.raises(EmbedderUnavailable, match="not a file"):
        _ = ClipEmbedder(str(tmp_path / "absent.json"), None).model_id


def test_config_that_shadows_a_builtin_is_refused(tmp_path: Path) -> None:
    shadow = tmp_path / "ViT-B-32.json"
    shadow.write_text('{"embed_dim": 8, "vision_cfg": {}, "text_cfg": {}}', encoding="utf-8")
    with pytest.raises(EmbedderUnavailable, match="rename the file"):
        _ = ClipEmbedder(str(shadow), None).model_id


def test_not_loaded_until_first_use_and_concurrent_first_use(tiny: TinyClip) -> None:
    embedder = ClipEmbedder(str(tiny.config_path), str(tiny.checkpoint_path), "cpu")
    assert embedder.readiness().state is ModelState.UNLOADED
    image = _images()[2]
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(embedder.embed([image]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


def test_shrink_to_input_gives_what_the_first_resize_gives_and_the_same_vectors(
    embedder: ClipEmbedder,
) -> None:
    from tests.helpers.images import photo

    resize = embedder.lifecycle.load().preprocess.transforms[0]
    sizes = [(2000, 1500), (775, 1033), (333, 97), (40, 30)]
    photos = [Image.open(io.BytesIO(photo(s, size))).convert("RGB") for s, size in enumerate(sizes)]
    shrunk = embedder.shrink_to_input(photos)
    for original, small in zip(photos[:-1], shrunk[:-1], strict=True):
        # Exactly the size CLIP's own resize makes, so that step leaves the pixels alone ...
        assert small.size == resize(original).size
        assert resize(small).tobytes() == small.tobytes()
    assert shrunk[-1] is photos[-1]  # below the input size: untouched, never enlarged
    # ... and the vectors are the ones of open_clip's preprocessing up to resampling.
    cosines = np.sum(embedder.embed(photos) * embedder.embed(shrunk), axis=1)
    assert cosines.min() > 0.999
