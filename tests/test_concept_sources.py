"""The shared concept reader: database.json and concept folders, strict and tolerant reading."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from evaluation.database import load_database
from model.concept_sources import (
    ConceptSourceError,
    SourceConcept,
    load_concept_source,
    resolve_image,
)
from model.grounding import ConceptName
from tests.helpers.training import make_concept_database
from training.concepts import load_concepts
from training.data import DataConfig, build_dataset, read_rows


def touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"image bytes")


def write_database(path: Path, entries: dict[str, Any], **extra: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"concept_dict": entries, **extra}), encoding="utf-8")
    return path


def concept_folder(root: Path, name: str, *files: str, info: str | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    touch(*(folder / f for f in files))
    if info is not None:
        (folder / "info.txt").write_text(info, encoding="utf-8")
    return folder


# --- database.json -----------------------------------------------------------------------------


def test_database_keys_are_names_and_differing_entry_names_are_display_names(
    tmp_path: Path,
) -> None:
    touch(tmp_path / "iron" / "1.png", tmp_path / "iron" / "2.png", tmp_path / "bo.png")
    database = write_database(
        tmp_path / "database.json",
        {
            "<ironman>": {
                "name": "Iron Man",
                "image": ["iron/1.png", "iron/2.png"],
                "info": " <ironman> wears a red suit.\n",
                "category": "person",
            },
            "bo": {"name": "<BO>", "image": "bo.png"},
        },
        path_to_concept={"ignored": True},
    )
    loaded = load_concept_source(database)
    assert loaded.problems == []
    ironman, bo = loaded.concepts
    assert ironman == SourceConcept(
        name="ironman",
        display_name="Iron Man",
        info=" <ironman> wears a red suit.\n",  # as written: prompts show it byte for byte
        category="person",
        images=(tmp_path / "iron" / "1.png", tmp_path / "iron" / "2.png"),
    )
    # The same name in another case is a display name too (the prompt shows <BO>, as the
    # reference's retriever does); missing fields read as empty.
    assert (bo.name, bo.display_name, bo.info, bo.category) == ("bo", "BO", "", None)
    assert bo.images == (tmp_path / "bo.png",)
    assert ironman.matcher_name() == ConceptName("ironman", ("Iron Man",))
    assert (ironman.shown_name, bo.shown_name) == ("Iron Man", "BO")


def test_concepts_keep_file_order(tmp_path: Path) -> None:
    touch(tmp_path / "x.png")
    database = write_database(
        tmp_path / "db.json", {f"<{n}>": {"image": "x.png"} for n in ("zed", "amy", "mo")}
    )
    assert [c.name for c in load_concept_source(database).concepts] == ["zed", "amy", "mo"]


def test_rap_paths_relative_to_the_folder_above_are_found(tmp_path: Path) -> None:
    root = tmp_path / "example_database"
    touch(root / "bo.png", root / "both.png", tmp_path / "both.png")
    database = write_database(
        root / "database.json",
        {
            "<bo>": {"image": "example_database/bo.png"},
            "<both>": {"image": "both.png"},
            "<abs>": {"image": str(root / "bo.png")},
        },
    )
    bo, both, absolute = load_concept_source(database).concepts
    assert bo.images == (root / "bo.png",)
    assert both.images == (root / "both.png",)  # beside the file wins over one folder up
    assert absolute.images == (root / "bo.png",)
    assert resolve_image(database, "gone.png") == root / "gone.png"


# --- concept folders ---------------------------------------------------------------------------


def test_folder_layout_reads_names_images_info_and_category(tmp_path: Path) -> None:
    mam = concept_folder(tmp_path, "mam", "b.JPG", "a.webp", "notes.md", "._a.jpg")
    concept_folder(tmp_path, "bo", "1.png", info="a corgi\n")
    (mam / "category.txt").write_text("cat\n", encoding="utf-8")
    concept_folder(tmp_path, ".git", "x.png")
    (tmp_path / "README.txt").write_text("not a concept")
    bo, cat = load_concept_source(tmp_path).concepts
    assert (bo.name, bo.display_name, bo.info, bo.category) == ("bo", None, "a corgi", None)
    assert (cat.name, cat.info, cat.category) == ("mam", "", "cat")
    assert cat.images == (mam / "a.webp", mam / "b.JPG")


def test_an_empty_root_folder_has_no_concepts(tmp_path: Path) -> None:
    assert load_concept_source(tmp_path) == load_concept_source(tmp_path, strict=False)
    assert load_concept_source(tmp_path).concepts == []


# --- strict and tolerant reading ---------------------------------------------------------------


def test_missing_image_strict_raises_tolerant_drops_it(tmp_path: Path) -> None:
    touch(tmp_path / "bo1.png", tmp_path / "mo.png")
    database = write_database(
        tmp_path / "database.json",
        {
            "<bo>": {"image": ["bo1.png", "bo2.png"]},
            "<ghost>": {"image": "ghost.png"},
            "<mo>": {"image": "mo.png"},
        },
    )
    with pytest.raises(ConceptSourceError, match=r"database\.json: concept 'bo': image .*bo2"):
        load_concept_source(database)
    loaded = load_concept_source(database, strict=False)
    assert [(c.name, c.images) for c in loaded.concepts] == [
        ("bo", (tmp_path / "bo1.png",)),
        ("mo", (tmp_path / "mo.png",)),
    ]
    assert loaded.problems == [
        f"concept 'bo': image {tmp_path / 'bo2.png'} does not exist",
        f"concept 'ghost': image {tmp_path / 'ghost.png'} does not exist",
        "concept 'ghost' has no reference image; list its photos under \"image\"",
    ]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("a string", "concept 'bad': expected an object"),
        ({"image": 3}, "concept 'bad': 'image' must be a path or a list of paths"),
        ({"image": ["ok.png", ""]}, "concept 'bad': 'image' must be a path"),
        ({"image": "ok.png", "info": ["x"]}, "concept 'bad': 'info' must be a string"),
        ({"image": "ok.png", "name": 7}, "concept 'bad': 'name' must be a string"),
        ({"image": []}, "concept 'bad' has no reference image"),
    ],
)
def test_malformed_entry_strict_raises_tolerant_skips_it(
    tmp_path: Path, entry: object, problem: str
) -> None:
    touch(tmp_path / "ok.png")
    database = write_database(
        tmp_path / "database.json", {"<bad>": entry, "<good>": {"image": "ok.png"}}
    )
    where = re.escape(f"{tmp_path / 'database.json'}: {problem}")
    with pytest.raises(ConceptSourceError, match=f"^{where}"):
        load_concept_source(database)
    loaded = load_concept_source(database, strict=False)
    assert [c.name for c in loaded.concepts] == ["good"]
    [reported] = loaded.problems
    assert reported.startswith(problem)


def test_a_key_that_is_no_name_is_reported(tmp_path: Path) -> None:
    touch(tmp_path / "ok.png")
    database = write_database(tmp_path / "db.json", {"<>": {"image": "ok.png"}})
    loaded = load_concept_source(database, strict=False)
    assert loaded.concepts == []
    assert loaded.problems == ["entry '<>': the key must be a concept name such as \"<bo>\""]


def test_duplicate_names_in_any_case_keep_the_first(tmp_path: Path) -> None:
    touch(tmp_path / "a.png", tmp_path / "b.png")
    database = write_database(
        tmp_path / "db.json", {"<bo>": {"image": "a.png"}, "BO": {"image": "b.png"}}
    )
    with pytest.raises(ConceptSourceError, match="concept 'BO' appears twice"):
        load_concept_source(database)
    loaded = load_concept_source(database, strict=False)
    assert [(c.name, c.images) for c in loaded.concepts] == [("bo", (tmp_path / "a.png",))]
    assert loaded.problems == ["concept 'BO' appears twice; the first one is kept"]


def test_a_name_freed_by_a_dropped_concept_can_be_taken(tmp_path: Path) -> None:
    touch(tmp_path / "b.png")
    database = write_database(
        tmp_path / "db.json", {"<bo>": {"image": "gone.png"}, "Bo": {"image": "b.png"}}
    )
    loaded = load_concept_source(database, strict=False)
    assert [c.name for c in loaded.concepts] == ["Bo"]
    assert len(loaded.problems) == 2


def test_empty_or_unreadable_concept_folders(tmp_path: Path) -> None:
    concept_folder(tmp_path, "bo", "1.png")
    concept_folder(tmp_path, "empty", "notes.md")
    concept_folder(tmp_path, "latin1", "1.png", info=None)
    (tmp_path / "latin1" / "info.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ConceptSourceError, match="concept 'empty' has no reference image"):
        load_concept_source(tmp_path)
    loaded = load_concept_source(tmp_path, strict=False)
    assert [c.name for c in loaded.concepts] == ["bo"]
    empty, latin1 = loaded.problems
    assert empty.startswith("concept 'empty' has no reference image; put .bmp/.gif/")
    assert latin1.startswith("concept 'latin1': cannot read ") and "info.txt" in latin1


def test_folder_names_differing_only_in_case_are_duplicates(tmp_path: Path) -> None:
    concept_folder(tmp_path, "Bo", "1.png")
    concept_folder(tmp_path, "bo", "1.png")
    loaded = load_concept_source(tmp_path, strict=False)
    assert [c.name for c in loaded.concepts] == ["Bo"]
    assert loaded.problems == ["concept 'bo' appears twice; the first one is kept"]


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "cannot read it as JSON"), ("[]", '"concept_dict" object')],
)
def test_unreadable_files_raise_even_when_tolerant(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "db.json").write_text(content)
    with pytest.raises(ConceptSourceError, match=message):
        load_concept_source(tmp_path / "db.json", strict=False)


def test_a_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(ConceptSourceError, match="no such file or folder"):
        load_concept_source(tmp_path / "nowhere.json", strict=False)


def test_without_need_images_paths_are_resolved_but_not_checked(tmp_path: Path) -> None:
    database = write_database(
        tmp_path / "db.json",
        {"<ironman>": {"name": "Iron Man", "image": "i.png"}, "<bo>": {"info": "a dog"}},
    )
    loaded = load_concept_source(database, need_images=False)
    assert [(c.name, c.images) for c in loaded.concepts] == [
        ("ironman", (tmp_path / "i.png",)),
        ("bo", ()),
    ]
    assert load_database(database) == loaded.concepts


# --- training reads the same names -------------------------------------------------------------


def displayed_database(root: Path) -> Path:
    """Three synthetic concepts whose entries carry display names that differ from the keys."""
    database = make_concept_database(root, concepts=3, images_per_concept=2, size=(64, 48))
    document = json.loads(database.read_text())
    for i, (key, entry) in enumerate(document["concept_dict"].items()):
        entry["name"] = f"Shown Name{i}"
        entry["info"] = f"Shown Name{i}, known as {key}, is a thing."
    database.write_text(json.dumps(document))
    return database


def test_training_names_concepts_by_key(tmp_path: Path) -> None:
    concepts = load_concepts(displayed_database(tmp_path))
    assert [(c.name, c.display_name) for c in concepts] == [
        ("c00", "Shown Name0"),
        ("c01", "Shown Name1"),
        ("c02", "Shown Name2"),
    ]


def test_stand_in_names_replace_display_names_in_infos(tmp_path: Path) -> None:
    concepts = load_concepts(displayed_database(tmp_path / "db"))
    config = DataConfig(samples=6, oct_share=0, vlt_share=0, image_side=112)
    build_dataset(concepts, tmp_path / "out", config)
    texts = [
        line
        for row in read_rows(tmp_path / "out")
        for part in row["prompt"][-1]["content"]  # the user turn, with or without a system one
        if part["type"] == "text"
        for line in part["text"].splitlines()
    ]
    demos = [t for t in texts if ". Name: <" in t]
    assert demos
    assert not [t for t in demos if "Shown Name" in t or "c0" in t]
