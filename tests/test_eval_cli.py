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
    # robust: img2 Anya correct, bo slot empty (Anya is img2's own) -> correct 2, empty 2
    assert (rob["correct"], rob["miss"], rob["empty"]) == (2, 0, 2)
    assert rob["precision"] == pytest.approx(1.0)
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
    assert "50.00" in result.stdout  # robust recall of the reference file, 2/4


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


# --- The paper's printed figures, for files that exercise every branch of its scripts ---------


def write_reference(path, rows):
    path.write_text(json.dumps([[f"q{i}.jpg", gt, cap, "q"] for i, (gt, cap) in enumerate(rows)]))
    return path


def paper_lines(path, *options):
    result = runner.invoke(eval_app, ["grounding", str(path), "--lines", *options])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_four_concept_file_prints_the_paper_script_figures(tmp_path):
    four = ["<thor>", "<hulk>", "<loki>", "<odin>"]
    path = write_reference(
        tmp_path / "ours-4_concepts.json",
        [
            (four, "<thor> and <hulk> fight.</s>"),  # C C E E (</s> removed)
            (four, "<thor>, <hulk> and <vision> pose."),  # C C M M (vision is not theirs)
            (["<vision>", "<loki>", "<odin>", "<hulk>"], ""),  # E E E E
            # lower-cased tokens loki, odin; "<vision>'s" is no token -> C C E E
            (["<loki>", "<odin>", "<thor>", "<vision>"], "Loki (LOKI) waves at <Vision>'s ODIN."),
        ],
    )
    # correct 6, MISS 2, empty 8: P = 6/8 = 75.0, R = 6/16 = 37.5, F1 = 2PR/(P+R) = 50.0
    name = "ours-4_concepts.json"
    assert paper_lines(path, "--matcher", "official") == [
        f"file: {name:<60}  metric (P/R/F1):  75.0 /  37.5 /  50.0"
    ]
    # robust also credits "<Vision>'s": correct 7, MISS 2, empty 7 -> P 77.8, R 43.8, F1 56.0
    assert paper_lines(path) == [f"file: {name:<60}  metric (P/R/F1):  77.8 /  43.8 /  56.0"]


def test_two_concept_file_case_rules(tmp_path):
    path = write_reference(
        tmp_path / "ours-2_concepts.json",
        [
            (["<thor>", "<hulk>", "<loki>", "<odin>"], "<thor> and <hulk> fight."),
            (["<Thor>", "<loki>"], "<Thor> waves."),
        ],
    )
    name = "ours-2_concepts.json"
    # Four-concept script (lower-cases): "<Thor>" of image 2 is another string than image 1's
    # "<thor>", both read "thor" -> image 1 C C M M, image 2 C M: 3 C, 3 M -> 50.0 / 50.0 / 50.0
    assert paper_lines(path, "--matcher", "official") == [
        f"file: {name:<60}  metric (P/R/F1):  50.0 /  50.0 /  50.0"
    ]
    # Two-concept script (case-sensitive): <Thor> and <thor> differ and neither image names
    # another's concept -> image 1 C C E E, image 2 C E: P = 3/3, R = 3/6, F1 = 2/3
    assert paper_lines(path, "--matcher", "official", "--case-sensitive") == [
        f"file: {name:<60}  metric (P/R/F1): 100.0 /  50.0 /  66.7"
    ]


def test_jsonl_names_are_scored_as_bracketed_names_by_the_official_matcher(tmp_path):
    path = write_jsonl(
        tmp_path / "run.jsonl", [{"image": "a.png", "concepts": ["bo"], "caption": "<bo> naps"}]
    )
    [scores] = grounding_json(path, "--matcher", "official")["results"]
    assert scores["correct"] == 1
