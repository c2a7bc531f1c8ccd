"""Evaluation runs: dataset loading, the resumable results file, the run loop and its summary."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from evaluation.cli import eval_app
from evaluation.client import ServiceError
from evaluation.database import DatabaseConcept
from evaluation.dataset import DatasetError, load_dataset
from evaluation.instructions import (
    MULTI_CONCEPT_INSTRUCTIONS,
    SINGLE_CONCEPT_INSTRUCTIONS,
    InstructionSet,
    instructions_for,
    rotated,
)
from evaluation.results import ResultsFileError
from evaluation.runner import Mode, ResultsLog, RunRow, pending_jobs, run_dataset
from evaluation.summary import percentile, retrieval_recall, summarise
from model.prompt import DEFAULT_INSTRUCTION


def make_dataset(root, *, queries=None, database=None):
    root.mkdir(parents=True, exist_ok=True)
    for name in ("bo.png", "bo2.png", "thao.png", "q1.jpg", "q2.jpg"):
        (root / name).write_bytes(b"image bytes")
    database = database or {
        "concept_dict": {
            "<bo>": {
                "name": "bo",
                "image": ["bo.png", "bo2.png"],
                "info": "a shiba",
                "category": "dog",
            },
            "<thao>": {"name": "Thao Nguyen", "image": "thao.png", "info": "a woman"},
        },
        "path_to_concept": {},
    }
    queries = queries or [
        {"image": "q1.jpg", "concepts": ["<BO>"]},
        {"image": "q2.jpg", "concepts": ["bo", "<thao>"]},
    ]
    (root / "database.json").write_text(json.dumps(database), encoding="utf-8")
    (root / "queries.json").write_text(json.dumps(queries), encoding="utf-8")
    return root


def row(image="q1.jpg", mode=Mode.RETRIEVAL, caption="<bo> runs", concepts=("bo",), **extra):
    return RunRow(
        image=image, mode=mode, concepts=concepts, caption=caption, latency_ms=5.0, **extra
    )


def test_load_dataset_resolves_paths_names_and_display_names(tmp_path):
    dataset = load_dataset(make_dataset(tmp_path / "ds"))
    bo, thao = dataset.concepts
    assert bo.images == (tmp_path / "ds" / "bo.png", tmp_path / "ds" / "bo2.png")
    assert (bo.name, bo.display_name, bo.category) == ("bo", None, "dog")
    assert (thao.name, thao.display_name, thao.category) == ("thao", "Thao Nguyen", None)
    assert [q.concepts for q in dataset.queries] == [("bo",), ("bo", "thao")]
    assert dataset.queries[1].path == tmp_path / "ds" / "q2.jpg"


def test_rap_style_paths_relative_to_the_folder_above(tmp_path):
    root = make_dataset(tmp_path / "example_database")
    database = {"concept_dict": {"<bo>": {"name": "bo", "image": "example_database/bo.png"}}}
    (root / "database.json").write_text(json.dumps(database))
    (root / "queries.json").write_text(json.dumps([{"image": "q1.jpg", "concepts": ["bo"]}]))
    [bo] = load_dataset(root).concepts
    assert bo.images == (root / "bo.png",)


def test_missing_query_image_is_named(tmp_path):
    root = make_dataset(tmp_path / "ds", queries=[{"image": "gone.jpg", "concepts": ["bo"]}])
    with pytest.raises(DatasetError, match=r"query image not found: .*gone\.jpg"):
        load_dataset(root)


def test_missing_reference_image_is_named(tmp_path):
    root = make_dataset(tmp_path / "ds")
    (root / "bo2.png").unlink()
    with pytest.raises(DatasetError, match=r"reference image of concept 'bo' not found: .*bo2"):
        load_dataset(root)


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        ([{"image": "q1.jpg", "concepts": ["<henry>"]}], "'<henry>' is not in database.json"),
        ([{"image": "q1.jpg", "concepts": []}], "non-empty list"),
        ([{"image": "q1.jpg", "concepts": ["bo"]}] * 2, "listed twice"),
        ([{"concepts": ["bo"]}], "query 0: expected"),
    ],
)
def test_bad_queries_are_refused(tmp_path, queries, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(make_dataset(tmp_path / "ds", queries=queries))


def test_results_log_round_trip_and_done_pairs(tmp_path):
    path = tmp_path / "out.jsonl"
    log = ResultsLog(path)
    first = row(concepts_used=[{"id": 1, "name": "bo", "score": 0.9}], timings_ms={"total": 4})
    log.append(first)
    log.append(row(mode=Mode.SKIP_RETRIEVAL))
    again = ResultsLog(path)
    assert again.rows == log.rows
    assert again.rows[0] == first
    assert again.done() == {("q1.jpg", Mode.RETRIEVAL), ("q1.jpg", Mode.SKIP_RETRIEVAL)}


def test_unfinished_last_line_is_dropped(tmp_path):
    path = tmp_path / "out.jsonl"
    ResultsLog(path).append(row())
    complete = path.read_text()
    path.write_text(complete + '{"image": "q2.jpg", "mo')
    log = ResultsLog(path)
    assert log.dropped_partial_line
    assert path.read_text() == complete
    log.append(row(image="q2.jpg"))
    assert [r.image for r in ResultsLog(path).rows] == ["q1.jpg", "q2.jpg"]


def test_complete_last_line_without_newline_is_kept(tmp_path):
    path = tmp_path / "out.jsonl"
    ResultsLog(path).append(row())
    path.write_text(path.read_text().rstrip("\n"))
    log = ResultsLog(path)
    assert not log.dropped_partial_line
    log.append(row(image="q2.jpg"))
    assert [r.image for r in ResultsLog(path).rows] == ["q1.jpg", "q2.jpg"]


def test_bad_line_in_the_middle_stops_with_its_number(tmp_path):
    path = tmp_path / "out.jsonl"
    good = json.dumps(
        {
            "image": "a",
            "mode": "retrieval",
            "concepts": ["bo"],
            "caption": "x",
            "latency_ms": 1,
            "concepts_used": [],
        }
    )
    path.write_text(f"{good}\nnot json\n{good}\n")
    with pytest.raises(ResultsFileError, match="line 2"):
        ResultsLog(path)
    path.write_text(good.replace("retrieval", "oracle") + "\n")
    with pytest.raises(ResultsFileError, match="line 1: 'mode' must be one of"):
        ResultsLog(path)


class RecordingClient:
    """Stands in for the HTTP client to check the run loop's own bookkeeping."""

    def __init__(self, fail_on_call=None):
        self.concepts = []
        self.captions = []
        self.instructions = []
        self.fail_on_call = fail_on_call

    def ensure_concept(self, concept):
        self.concepts.append(concept.name)
        return {"bo": 11, "thao": 12}[concept.name]

    def caption(self, image, *, top_k=None, concept_ids=(), instruction=None):
        self.captions.append((image.name, top_k, list(concept_ids)))
        self.instructions.append(instruction)
        if len(self.captions) == self.fail_on_call:
            raise ServiceError("captioning failed: HTTP 503: the VLM is not ready")
        return {
            "caption": "<bo> sits.",
            "concepts_used": [{"id": 11, "name": "bo", "score": 0.8}],
            "concepts_mentioned": [{"id": 11, "name": "bo"}],
            "model": "repic",
            "timings_ms": {"total": 3.0},
        }


def test_run_resumes_where_it_stopped(tmp_path):
    dataset = load_dataset(make_dataset(tmp_path / "ds"))
    log = ResultsLog(tmp_path / "out.jsonl")
    crashing = RecordingClient(fail_on_call=3)
    with pytest.raises(ServiceError):
        run_dataset(dataset, crashing, log, top_k=2)
    assert crashing.captions[:2] == [("q1.jpg", 2, []), ("q1.jpg", None, [11])]
    assert len(ResultsLog(log.path).rows) == 2

    resumed_log = ResultsLog(log.path)
    assert [(q.image, m) for q, m in pending_jobs(dataset, resumed_log)] == [
        ("q2.jpg", Mode.RETRIEVAL),
        ("q2.jpg", Mode.SKIP_RETRIEVAL),
    ]
    resumed = RecordingClient()
    run_dataset(dataset, resumed, resumed_log, top_k=2)
    assert resumed.concepts == ["bo", "thao"]
    assert resumed.captions == [("q2.jpg", 2, []), ("q2.jpg", None, [11, 12])]
    rows = ResultsLog(log.path).rows
    assert [(r.image, r.mode) for r in rows] == [
        ("q1.jpg", Mode.RETRIEVAL),
        ("q1.jpg", Mode.SKIP_RETRIEVAL),
        ("q2.jpg", Mode.RETRIEVAL),
        ("q2.jpg", Mode.SKIP_RETRIEVAL),
    ]
    assert rows[3].concepts == ("bo", "thao")
    assert rows[3].model == "repic"

    finished = RecordingClient()
    run_dataset(dataset, finished, ResultsLog(log.path), top_k=2)
    assert (finished.concepts, finished.captions) == ([], [])


def test_named_concepts_go_in_database_order_and_instructions_rotate(tmp_path):
    queries = [
        {"image": "q1.jpg", "concepts": ["<thao>", "bo"]},  # listed against database order
        {"image": "q2.jpg", "concepts": ["bo"]},
    ]
    dataset = load_dataset(make_dataset(tmp_path / "ds", queries=queries))
    log = ResultsLog(tmp_path / "out.jsonl")
    client = RecordingClient()
    run_dataset(dataset, client, log, top_k=2, instructions=MULTI_CONCEPT_INSTRUCTIONS)
    # the paper's retriever walks database.json: bo (11) before thao (12)
    assert client.captions[1] == ("q1.jpg", None, [11, 12])
    # query i gets instruction i mod 3, in both modes
    first, second = MULTI_CONCEPT_INSTRUCTIONS[:2]
    assert client.instructions == [first, first, second, second]
    assert [r.instruction for r in ResultsLog(log.path).rows] == client.instructions


def test_instruction_sets_are_the_paper_scripts():
    assert instructions_for(InstructionSet.AUTO, [1, 1]) == SINGLE_CONCEPT_INSTRUCTIONS
    assert instructions_for(InstructionSet.AUTO, [1, 2]) == MULTI_CONCEPT_INSTRUCTIONS
    assert len(SINGLE_CONCEPT_INSTRUCTIONS) == 4 and len(MULTI_CONCEPT_INSTRUCTIONS) == 3
    assert instructions_for(InstructionSet.FIXED, [2]) == (DEFAULT_INSTRUCTION,)
    assert [rotated(MULTI_CONCEPT_INSTRUCTIONS, i) for i in (0, 3, 4)] == [
        MULTI_CONCEPT_INSTRUCTIONS[0],
        MULTI_CONCEPT_INSTRUCTIONS[0],
        MULTI_CONCEPT_INSTRUCTIONS[1],
    ]


def test_summary_scores_recall_and_latency_per_mode():
    used_bo = [{"id": 1, "name": "bo", "score": 0.9}]
    rows = [
        row("a", Mode.RETRIEVAL, "<bo> and Nana", ("bo", "thao"), concepts_used=used_bo),
        row("b", Mode.RETRIEVAL, "a dog", ("bo",), concepts_used=[]),
        row("a", Mode.SKIP_RETRIEVAL, "<bo>", ("bo", "thao"), concepts_used=used_bo),
        row("a", Mode.RETRIEVAL, "repeated pair: ignored", ("bo",)),
    ]
    concepts = [DatabaseConcept("thao", "Nana", "", None, ())]
    retrieval, skip = summarise(rows, concepts)
    assert retrieval.mode is Mode.RETRIEVAL
    # display name "Nana" counts: 2 correct, b: empty -> P = 2/2, R = 2/3
    assert (retrieval.robust.correct, retrieval.robust.miss, retrieval.robust.empty) == (2, 0, 1)
    # the official matcher ignores "Nana": the thao slot is empty (bo is a's own concept)
    assert (retrieval.official.correct, retrieval.official.miss) == (1, 0)
    assert retrieval.recall_at_k == pytest.approx(1 / 3)  # bo found of bo, thao, bo
    assert skip.recall_at_k == pytest.approx(1 / 2)
    assert retrieval.latency_ms == {50: 5.0, 90: 5.0, 99: 5.0}


def test_retrieval_recall_matches_names_case_insensitively():
    rows = [row(concepts=("Bo", "thao"), concepts_used=[{"name": "bo"}, {"name": "henry"}])]
    assert retrieval_recall(rows) == pytest.approx(1 / 2)


def test_percentile_interpolates_between_ranks():
    values = [40.0, 10.0, 30.0, 20.0]
    # sorted 10, 20, 30, 40: rank (n-1)q = 1.5 -> 25; 2.7 -> 37; 2.97 -> 39.7
    assert percentile(values, 50) == pytest.approx(25.0)
    assert percentile(values, 90) == pytest.approx(37.0)
    assert percentile(values, 99) == pytest.approx(39.7)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_run_command_names_a_missing_image_before_contacting_the_server(tmp_path):
    root = make_dataset(tmp_path / "ds", queries=[{"image": "lost.jpg", "concepts": ["bo"]}])
    result = CliRunner().invoke(
        eval_app, ["run", str(root), "--server", "http://127.0.0.1:9", "--key", "k"]
    )
    assert result.exit_code == 1
    assert "lost.jpg" in result.stderr


def test_run_command_reports_an_unreachable_server(tmp_path):
    root = make_dataset(tmp_path / "ds")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        eval_app,
        ["run", str(root), "--server", "http://127.0.0.1:9", "--key", "k", "--out", str(out)],
    )
    assert result.exit_code == 1
    assert "cannot reach the service" in result.stderr
