"""GRPO training data: concept databases, the three sample kinds, the run file, `build-data`."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from model.prompt import SYSTEM_PROMPT
from tests.helpers.training import make_concept_database
from training.cli import train_app
from training.concepts import (
    ConceptDatabaseError,
    load_concepts,
    person_like_names,
    rename_in_text,
)
from training.config import (
    LANGUAGE_MODEL_LINEAR_LAYERS,
    RunConfig,
    RunConfigError,
    load_run_config,
)
from training.data import DataConfig, build_dataset, read_rows
from training.prompts import (
    ICT_NAME_SUFFIX,
    ICT_NO_REPEAT_SUFFIX,
    ICT_QUESTION,
    OCT_QUESTION,
    OCT_SUFFIX,
    VLT_QUESTION,
    VLT_SUFFIX,
    PromptStyle,
    ict_suffix,
    reference_turn,
)
from training.rewards import score_vlt


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("concepts")
    return make_concept_database(root, concepts=6, images_per_concept=2, size=(200, 150))


@pytest.fixture(scope="module")
def built(database: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "set"
    config = DataConfig(
        samples=60,
        seed=3,
        multi_share=0.5,
        max_collage=4,
        image_side=224,
        prompt_style=PromptStyle.INFERENCE,
    )
    build_dataset(load_concepts(database), out, config)
    return out


@pytest.fixture(scope="module")
def built_reference(database: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "reference"
    config = DataConfig(samples=60, seed=3, multi_share=0.5, max_collage=4, image_side=224)
    build_dataset(load_concepts(database), out, config)
    return out


def _rows(out: Path) -> list[dict[str, Any]]:
    return read_rows(out)


def _texts(row: dict[str, Any]) -> list[str]:
    return [p["text"] for p in row["prompt"][1]["content"] if p["type"] == "text"]


def test_manifest_counts_each_kind_and_balances_oct(built: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    rows = _rows(built)
    assert manifest["samples"] == len(rows) == 60
    assert manifest["counts"] == {"oct": 20, "vlt": 20, "ict": 20}
    assert manifest["oct_labels"] == {"yes": 10, "no": 10}
    assert sum(manifest["ict_concepts"].values()) == 20
    assert manifest["image_files"] == len(list((built / "images").iterdir()))
    with Image.open(built / "preview.png") as preview:
        assert preview.width >= 1000 and preview.height >= 300


def test_rows_are_trl_conversations_with_one_placeholder_per_image(built: Path) -> None:
    for row in _rows(built):
        system, user = row["prompt"]
        assert system == {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]}
        assert user["role"] == "user"
        placeholders = [p for p in user["content"] if p["type"] == "image"]
        assert placeholders == [{"type": "image"}] * len(row["images"])
        assert user["content"][-2] == {"type": "image"}  # the query image comes last
        assert all(Path(p).is_file() for p in row["images"])


def test_rows_follow_the_repic_demo_format(built: Path) -> None:
    for row in _rows(built):
        *demos, instruction = _texts(row)
        assert instruction.startswith("This is the query image. ")
        for i, text in enumerate(demos, start=1):
            assert text.startswith(f"{i}. Name: <") and ">, Info: " in text


def test_oct_rows_ask_yes_or_no_about_the_demo_concept(built: Path) -> None:
    for row in (r for r in _rows(built) if r["task"] == "oct"):
        (demo, instruction) = _texts(row)
        name = demo.split("Name: ")[1].split(",")[0]
        assert instruction == f"This is the query image. Is {name} in this image? Answer yes or no."
        assert row["label"] in ("yes", "no") and row["bbox"] is None and row["names"] is None


def test_vlt_boxes_lie_inside_a_canvas_the_processor_keeps(built: Path) -> None:
    for row in (r for r in _rows(built) if r["task"] == "vlt"):
        x1, y1, x2, y2 = row["bbox"]
        with Image.open(row["images"][-1]) as query:
            assert query.width % 28 == 0 and query.height % 28 == 0
            assert 0 <= x1 < x2 <= query.width and 0 <= y1 < y2 <= query.height
        assert _texts(row)[-1].endswith("Output its bbox coordinates using JSON format.")
        assert score_vlt(row["answer"], row["bbox"]) == 1.0  # the stored answer earns the reward


def test_vlt_box_frames_the_pasted_concept(built: Path) -> None:
    # The synthetic concepts' own backgrounds are flat colours: the box must hold pixels of the
    # pasted photo, whose colour differs from the border just outside it.
    row = next(r for r in _rows(built) if r["task"] == "vlt")
    x1, y1, x2, y2 = row["bbox"]
    with Image.open(row["images"][-1]) as query:
        inside = query.convert("RGB").crop((x1 + 2, y1 + 2, x2 - 2, y2 - 2)).resize((1, 1))
        assert inside.getpixel((0, 0)) != query.convert("RGB").getpixel((max(0, x1 - 1), y1))


def test_ict_rows_use_stand_in_names_everywhere(built: Path, database: Path) -> None:
    originals = {c.name for c in load_concepts(database)}
    ict = [r for r in _rows(built) if r["task"] == "ict"]
    assert {len(r["names"]) for r in ict} >= {1, 2}
    for row in ict:
        *demos, instruction = _texts(row)
        assert instruction == "This is the query image. Give a personalized caption of this image."
        shown = [d.split("Name: <")[1].split(">")[0] for d in demos]
        assert set(row["names"]) <= set(shown)
        assert not set(shown) & originals
        for demo, name in zip(demos, shown, strict=True):
            info = demo.split("Info: ")[1]
            assert info.startswith(f"{name} is a ")  # the info's own mention is renamed too


def test_multi_concept_queries_are_collages(built: Path) -> None:
    row = next(r for r in _rows(built) if r["task"] == "ict" and len(r["names"]) > 1)
    assert len(row["images"]) == len(row["names"]) + 1
    with Image.open(row["images"][-1]) as collage:
        assert collage.width == 2 * collage.height or collage.width == collage.height


def test_same_seed_same_bytes_other_seed_other_data(database: Path, tmp_path: Path) -> None:
    concepts = load_concepts(database)
    config = DataConfig(samples=12, seed=7, image_side=112)
    build_dataset(concepts, tmp_path / "a", config)
    build_dataset(concepts, tmp_path / "b", config)
    build_dataset(concepts, tmp_path / "c", DataConfig(samples=12, seed=8, image_side=112))
    a, b, c = ((tmp_path / d / "train.jsonl").read_bytes() for d in "abc")
    assert a == b and a != c
    names = sorted(p.name for p in (tmp_path / "a" / "images").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b" / "images").iterdir())


def test_shares_set_the_mix(database: Path, tmp_path: Path) -> None:
    config = DataConfig(samples=10, oct_share=0, vlt_share=1, ict_share=4, image_side=112)
    manifest = build_dataset(load_concepts(database), tmp_path / "d", config)
    assert manifest["counts"] == {"oct": 0, "vlt": 2, "ict": 8}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("samples", 0, "samples"),
        ("oct_share", -1.0, "shares"),
        ("multi_share", 1.5, "multi_share"),
        ("max_collage", 5, "max_collage"),
        ("image_side", 64, "image_side"),
    ],
)
def test_data_config_refuses_bad_values(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DataConfig(**{field: value})  # type: ignore[arg-type]


def test_refuses_a_non_empty_output_folder(database: Path, tmp_path: Path) -> None:
    (tmp_path / "stale.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        build_dataset(load_concepts(database), tmp_path, DataConfig(samples=3))


def test_database_json_with_a_single_image_string(tmp_path: Path) -> None:
    database = make_concept_database(tmp_path, concepts=2, images_per_concept=1, size=(64, 48))
    concepts = load_concepts(database)
    assert [c.name for c in concepts] == ["c00", "c01"]
    assert all(len(c.images) == 1 and c.images[0].is_file() for c in concepts)
    assert concepts[0].category == "dog" and concepts[0].info.startswith("c00 is a ")


def test_folder_per_concept(tmp_path: Path) -> None:
    for name in ("bo", "mam"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (32, 32), "red").save(tmp_path / name / "1.png")
    (tmp_path / "bo" / "info.txt").write_text("a corgi\n")
    (tmp_path / "bo" / "notes.md").write_text("not an image")
    bo, mam = load_concepts(tmp_path)
    assert (bo.name, bo.info, len(bo.images)) == ("bo", "a corgi", 1)
    assert (mam.name, mam.info) == ("mam", "")


def test_database_errors_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "db.json").write_text(json.dumps({"concept_dict": {"<bo>": {"image": "x.jpg"}}}))
    with pytest.raises(ConceptDatabaseError, match="does not exist"):
        load_concepts(tmp_path / "db.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConceptDatabaseError, match="concept_dict"):
        load_concepts(tmp_path / "bad.json")
    (tmp_path / "only").mkdir()
    with pytest.raises(ConceptDatabaseError, match="at least 2"):
        load_concepts(tmp_path / "only")


def test_stand_in_names_and_renaming() -> None:
    import random

    names = person_like_names(random.Random(0), 50, avoid=["bo"])
    assert len(set(names)) == 50 and "bo" not in names
    assert all(n.isalpha() and n.islower() for n in names)
    assert (
        rename_in_text("<bo> is Bo's dog, not bob.", "bo", "mira")
        == "<mira> is mira's dog, not bob."
    )


def test_run_config_defaults_are_the_papers(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text('[data]\ndir = "d"\n')
    run = load_run_config(tmp_path / "run.toml")
    g, lora = run.grpo, run.lora
    assert (g.num_generations, g.beta, g.epsilon, g.learning_rate) == (8, 0.04, 0.2, 1e-5)
    assert (g.epochs, g.temperature, g.max_completion_length) == (2, 1.0, 256)
    assert (lora.r, lora.alpha, lora.dropout) == (64, 128, 0.05)
    assert lora.target_modules is None  # the reference's rule, computed from the model
    assert (g.seed, g.data_seed, g.save_steps) == (42, 2024, 100)
    assert run.rewards.iou_threshold == 0.5 and run.rewards.reference_compat
    assert (run.model.max_pixels, run.model.min_pixels) == (12845056, 3136)
    # 8 GPUs x 1 completion x 2 accumulations = 16 completions = 2 prompts x 8 per step
    assert g.per_device_batch_size * g.gradient_accumulation_steps == 16
    assert g.step_summary() == (
        "one optimizer step: 2 prompts x 8 completions = 16 completions (1 device(s) x 8 per "
        "micro-batch x 2 accumulation); reference: 2 prompts x 8 = 16 (8 GPUs x 1 x 2)"
    )


def test_lora_targets_are_every_linear_layer_outside_the_vision_tower_but_lm_head() -> None:
    from transformers import Qwen2_5_VLForConditionalGeneration

    from model.tiny.qwen import tiny_qwen25vl_config
    from training.grpo import reference_lora_targets

    model = Qwen2_5_VLForConditionalGeneration(tiny_qwen25vl_config())
    targets = reference_lora_targets(model)
    # the reference adapts lm_head too; TRL's GRPO trainer refuses an adapter there
    assert "lm_head" not in targets
    assert not [t for t in targets if "visual" in t or "embed" in t]
    layers = model.config.text_config.num_hidden_layers
    assert len(targets) == 7 * layers  # q k v o gate up down per layer
    assert all(re.fullmatch(LANGUAGE_MODEL_LINEAR_LAYERS, t) for t in targets)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[grpo]\nnum_generation = 8\n", "num_generation: Extra inputs"),
        ("[grpo]\nnum_generations = 3\n", "multiple of num_generations"),
        ("[grpo]\nbeta = -1\n", "grpo.beta"),
        ('[lora]\ntarget_modules = "(("\n', "not a valid regular expression"),
        ("[rewards]\niou_threshold = 0\n", "rewards.iou_threshold"),
        ("[grpo\n", "run.toml"),
    ],
)
def test_run_config_errors(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "run.toml").write_text(toml)
    with pytest.raises(RunConfigError, match=message):
        load_run_config(tmp_path / "run.toml")


def test_cli_build_data(database: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["build-data", "--database", str(database), "--out", str(out), "--samples", "9"]
    result = CliRunner().invoke(train_app, [*args, "--vlt", "0", "--image-side", "112"])
    assert result.exit_code == 0, result.output
    assert "9 samples from 6 concepts" in result.output
    assert json.loads((out / "manifest.json").read_text())["counts"]["vlt"] == 0
    again = CliRunner().invoke(train_app, args)
    assert again.exit_code == 1 and "not empty" in again.output


def test_cli_grpo_refuses_a_bad_run_file(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text("[grpo]\nepsilon = 2\n")
    result = CliRunner().invoke(train_app, ["grpo", str(tmp_path / "run.toml")])
    assert result.exit_code == 2 and "grpo.epsilon" in result.output


def test_shipped_run_file_is_the_default_recipe() -> None:
    repo = Path(__file__).resolve().parents[1]
    shipped = load_run_config(repo / "training" / "configs" / "repic-qwen25vl-7b.toml")
    assert shipped == RunConfig.model_validate({"output_dir": "runs/repic-qwen25vl-7b"})


# --- the reference's training prompt (the default) ---------------------------------------------


def test_reference_rows_have_no_system_message_and_all_images_first(built_reference: Path) -> None:
    for row in _rows(built_reference):
        [user] = row["prompt"]
        assert user["role"] == "user"
        *images, text = user["content"]
        assert images == [{"type": "image"}] * len(row["images"])
        assert text["type"] == "text"


def test_reference_rows_carry_the_per_task_suffixes(built_reference: Path) -> None:
    suffixes = []
    for row in _rows(built_reference):
        text = row["prompt"][0]["content"][-1]["text"]
        *demos, question = text.split("\n")
        assert all(d.startswith(f"{i}. Name: <") for i, d in enumerate(demos, start=1))
        if row["task"] == "oct":
            assert re.fullmatch(r"Is <\w+> in this image\?" + re.escape(OCT_SUFFIX), question)
            assert len(row["images"]) == 2
        elif row["task"] == "vlt":
            assert re.fullmatch(r"Locate <\w+> in the image\." + re.escape(VLT_SUFFIX), question)
            assert len(row["images"]) == 1  # the box route of the reference takes the query only
        else:
            suffix = question.removeprefix("Give a personalized caption of this image.")
            assert suffix in ("", ICT_NAME_SUFFIX, ICT_NO_REPEAT_SUFFIX)
            suffixes.append(suffix)
            assert len(row["images"]) == len(demos) + 1
    # 20 draws of 1-in-5 / 1-in-5 / 3-in-5: all three show up
    assert set(suffixes) == {"", ICT_NAME_SUFFIX, ICT_NO_REPEAT_SUFFIX}


GOLDEN_HEAD = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
GOLDEN_TAIL = "<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (
            "oct",
            GOLDEN_HEAD + IMAGE * 2 + "1. Name: <mira>, Info: a corgi\nIs <mira> in this image?"
            " The final answer must be either 'yes' or 'no' with no additional output."
            + GOLDEN_TAIL,
        ),
        (
            "vlt",
            GOLDEN_HEAD + IMAGE + "1. Name: <mira>, Info: a corgi\nLocate <mira> in the image."
            " For bounding box coordinates, return the final answer in JSON format." + GOLDEN_TAIL,
        ),
        (
            "ict",
            GOLDEN_HEAD + IMAGE * 3 + "1. Name: <mira>, Info: a corgi\n2. Name: <tomas>, Info:  "
            "a cat\nGive a personalized caption of this image. Output the final answer including "
            "its name." + GOLDEN_TAIL,
        ),
    ],
)
def test_reference_prompt_of_each_task_renders_exactly(
    tiny_qwen_processor: Any, task: str, expected: str
) -> None:
    # The chat template adds Qwen's default system turn, as it does for the reference trainer.
    mira, tomas = "1. Name: <mira>, Info: a corgi", "2. Name: <tomas>, Info:  a cat"
    turns = {
        "oct": reference_turn([mira], 2, OCT_QUESTION.format(name="<mira>"), OCT_SUFFIX),
        "vlt": reference_turn([mira], 1, VLT_QUESTION.format(name="<mira>"), VLT_SUFFIX),
        "ict": reference_turn([mira, tomas], 3, ICT_QUESTION, ICT_NAME_SUFFIX),
    }
    rendered = tiny_qwen_processor.apply_chat_template(
        turns[task].messages(), tokenize=False, add_generation_prompt=True
    )
    assert rendered == expected


def test_ict_suffix_rolls_like_the_reference() -> None:
    import random

    rng = random.Random(7)
    drawn = Counter(ict_suffix(rng) for _ in range(5000))
    assert drawn[""] / 5000 == pytest.approx(3 / 5, abs=0.03)
    assert drawn[ICT_NAME_SUFFIX] / 5000 == pytest.approx(1 / 5, abs=0.03)
    assert drawn[ICT_NO_REPEAT_SUFFIX] / 5000 == pytest.approx(1 / 5, abs=0.03)
