"""``repic eval grounding`` on generated result files of both formats."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from evaluation.cli import eval_app

runner = CliRunner()


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def reference_file(tmp_path):
    items = [
        ["img/1.png", ["<Anya>"], "<Anya> waves at the camera.", "Give a caption."],
        ["img/2.png", ["<Anya>", "<bo>"], "<Anya>'s dog sits.", "Give a caption."],
        ["img/3.png", ["<bo>"], "A dog runs.", "Give a caption."],
    ]
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(items, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def jsonl_file(tmp_path):
    return write_jsonl(
        tmp_path / "ours.jsonl",
        [
            {"image": "a.png", "concepts": ["ironman"], "caption": "Iron Man flies.", "mode": "r"},
            {"image": "a.png", "concepts": ["ironman"], "caption": "<ironman> flies.", "mode": "s"},
            {"image": "b.png", "concepts": ["bo"], "caption": "<bo> naps.", "mode": "r"},
        ],
    )


def grounding_json(*args):
    result = runner.invoke(eval_app, ["grounding", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_reference_file_official_and_robust(reference_file):
    official = grounding_json(reference_file, "--matcher", "official")
    robust = grounding_json(reference_file)
    [off] = official["results"]
    [rob] = robust["results"]
    assert off["format"] == "reference"
    assert off["mode"] is None
    # official: img1 Anya correct; img2 "<Anya>'s" is no token -> both slots empty; img3 empty
    assert (off["correct"], off["miss"], off["empty"], off["slots"]) == (1, 0, 3, 4)
    assert off["recall"] == pytest.approx(float(Fraction(1, 4)))
    # robust: img2 Anya correct, bo slot MISS (Anya named) -> correct 2, MISS 1, empty 1
    assert (rob["correct"], rob["miss"], rob["empty"]) == (2, 1, 1)
    assert rob["precision"] == pytest.approx(float(Fraction(2, 3)))
    assert rob["recall"] == pytest.approx(float(Fraction(2, 4)))


def test_case_sensitive_official(reference_file, tmp_path):
    items = [["x.png", ["<Anya>"], "<anya> waves.", "q"]]
    path = tmp_path / "lower.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    [insensitive] = grounding_json(path, "--matcher", "official")["results"]
    [sensitive] = grounding_json(path, "--matcher", "official", "--case-sensitive")["results"]
    assert (insensitive["correct"], sensitive["correct"], sensitive["empty"]) == (1, 0, 1)


def test_case_sensitive_with_robust_matcher_is_a_usage_error(reference_file):
    result = runner.invoke(eval_app, ["grounding", str(reference_file), "--case-sensitive"])
    assert result.exit_code == 2
    assert "official" in result.output


def test_jsonl_modes_are_scored_separately_and_database_adds_display_names(jsonl_file, tmp_path):
    database = tmp_path / "database.json"
    database.write_text(
        json.dumps({"concept_dict": {"<ironman>": {"name": "Iron Man", "image": "i.png"}}}),
        encoding="utf-8",
    )
    plain = {r["mode"]: r for r in grounding_json(jsonl_file)["results"]}
    named = {r["mode"]: r for r in grounding_json(jsonl_file, "--database", database)["results"]}
    assert list(plain) == ["r", "s"]
    assert (plain["r"]["images"], plain["r"]["correct"], plain["r"]["empty"]) == (2, 1, 1)
    assert (named["r"]["correct"], named["r"]["empty"]) == (2, 0)
    assert (plain["s"]["correct"], named["s"]["correct"]) == (1, 1)


def test_several_files_in_one_table(reference_file, jsonl_file):
    result = runner.invoke(eval_app, ["grounding", str(reference_file), str(jsonl_file)])
    assert result.exit_code == 0, result.output
    assert "reference.json" in result.stdout
    assert "ours.jsonl" in result.stdout
    assert "66.67" in result.stdout  # robust precision of the reference file, 2/3


def test_malformed_jsonl_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        json.dumps({"image": "a", "concepts": ["bo"], "caption": "x"})
        + "\n"
        + json.dumps({"image": "b", "concepts": "bo", "caption": "y"})
        + "\n",
        encoding="utf-8",
    )
    result = runner.invoke(eval_app, ["grounding", str(path)])
    assert result.exit_code == 1
    assert "line 2" in result.stderr
    assert "concepts must be a list" in result.stderr


def test_jsonl_line_missing_caption_and_broken_json(tmp_path):
    missing = write_jsonl(tmp_path / "missing.jsonl", [{"image": "a", "concepts": ["bo"]}])
    result = runner.invoke(eval_app, ["grounding", str(missing)])
    assert result.exit_code == 1
    assert "line 1: missing key(s): caption" in result.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"image": "a", "concepts": ["bo"], "caption": "x"}\n\n{"image": \n')
    result = runner.invoke(eval_app, ["grounding", str(broken)])
    assert result.exit_code == 1
    assert "line 3: not valid JSON" in result.stderr


def test_malformed_reference_item_is_named(tmp_path):
    path = tmp_path / "ref.json"
    path.write_text(json.dumps([["a.png", ["<bo>"], "cap", "q"], ["b.png", ["<bo>"]]]))
    result = runner.invoke(eval_app, ["grounding", str(path)])
    assert result.exit_code == 1
    assert "item 1" in result.stderr


def test_missing_results_file_is_a_usage_error(tmp_path):
    result = runner.invoke(eval_app, ["grounding", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2
