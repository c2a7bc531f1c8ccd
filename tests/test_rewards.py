"""The reward rules, pinned as tables of tricky model outputs."""

from __future__ import annotations

from typing import Any

import pytest

from training.rewards import (
    box_iou,
    completion_text,
    ict_reward,
    oct_reward,
    parse_first_box,
    reference_iou,
    reward_functions,
    score_ict,
    score_oct,
    score_vlt,
    vlt_reward,
)

# (answer, label, reward with whole words, reward with the paper's substring matching)
OCT_TABLE = [
    ("Yes.", "yes", 1.0, 1.0),
    ("yes", "no", 0.0, 0.0),
    ("No, it is a different dog.", "no", 1.0, 1.0),
    ("NO", "no", 1.0, 1.0),
    ("  yes, the same toy", "YES", 1.0, 1.0),
    ("It is not the same object.", "no", 0.0, 1.0),  # "not" reads as no only by substring
    ("Nobody is in the picture.", "no", 0.0, 1.0),
    ("Yesterday's photo shows it, yes.", "yes", 1.0, 1.0),  # word: the later "yes"
    ("Yesterday it was here, no.", "no", 1.0, 0.0),  # substring: "yes" comes first
    ("I know it is there: yes", "yes", 1.0, 0.0),  # substring: the "no" in "know" comes first
    ("Definitely the same one.", "yes", 0.0, 0.0),  # no verdict at all
    ("", "no", 0.0, 0.0),
    ("No, yes, it is.", "yes", 0.0, 0.0),  # the first verdict counts
    ("The answer is: no-", "no", 1.0, 1.0),
    ("eyes closed", "yes", 0.0, 1.0),
]


@pytest.mark.parametrize(("answer", "label", "words", "substring"), OCT_TABLE)
def test_oct_table(answer: str, label: str, words: float, substring: float) -> None:
    assert score_oct(answer, label) == words
    assert score_oct(answer, label, reference_compat=True) == substring


def test_oct_rejects_a_label_that_is_not_yes_or_no() -> None:
    with pytest.raises(ValueError, match="'yes' or 'no'"):
        score_oct("yes", "maybe")


GT = (100.0, 100.0, 200.0, 200.0)

# (answer, reward at IoU >= 0.5)
VLT_TABLE = [
    ("[100, 100, 200, 200]", 1.0),
    ("The dog is at [100,100,200,200].", 1.0),
    ("[ 100.0 , 100.5 , 199.9 , 200 ]", 1.0),
    ('{"bbox_2d": [110, 110, 210, 210], "label": "<bo>"}', 1.0),  # IoU 0.68
    ('```json\n{"bbox_2d": [100, 100, 200, 200]}\n```', 1.0),
    ('```json\n[{"bbox_2d": [100, 100, 200, 200], "label": "bo"}]\n```', 1.0),
    ('[{"bbox_2d": [0, 0, 50, 50]}, {"bbox_2d": [100, 100, 200, 200]}]', 0.0),  # first box only
    ("[0, 0, 50, 50] or maybe [100, 100, 200, 200]", 0.0),
    ("[150, 150, 250, 250]", 0.0),  # IoU 1/7
    ("[100, 100, 200, 150]", 1.0),  # IoU exactly 0.5 passes
    ("[200, 200, 100, 100]", 0.0),  # corners swapped: degenerate
    ("[100, 100, 100, 200]", 0.0),  # zero width
    ("[100, 100, 200]", 0.0),  # three numbers
    ("[100, 100, 200, 200, 1]", 0.0),  # five numbers
    ("[a, 100, 200, 200]", 0.0),
    ("(100, 100, 200, 200)", 0.0),  # not a bracketed box
    ("x1=100 y1=100 x2=200 y2=200", 0.0),
    ("", 0.0),
    ("[[100, 100, 200, 200]]", 1.0),
    ("[-10, -10, 200, 200]", 0.0),  # IoU 0.23
    ("[1e2, 100, 200, 200]", 0.0),  # exponent notation is not a coordinate
]


@pytest.mark.parametrize(("answer", "reward"), VLT_TABLE)
def test_vlt_table(answer: str, reward: float) -> None:
    assert score_vlt(answer, GT) == reward


def test_vlt_threshold_is_configurable() -> None:
    answer = "[150, 150, 250, 250]"  # IoU 1/7 with GT
    assert score_vlt(answer, GT, iou_threshold=0.1) == 1.0
    assert score_vlt(answer, GT, iou_threshold=0.2) == 0.0
    with pytest.raises(ValueError, match="iou_threshold"):
        score_vlt(answer, GT, iou_threshold=0.0)


def test_parse_first_box_and_iou() -> None:
    assert parse_first_box("at [1, 2.5, 3, 4] and [5, 6, 7, 8]") == (1.0, 2.5, 3.0, 4.0)
    assert parse_first_box("no box here") is None
    assert box_iou(GT, GT) == 1.0
    assert box_iou(GT, (200.0, 200.0, 300.0, 300.0)) == 0.0  # touching corners
    assert box_iou(GT, (150.0, 100.0, 250.0, 200.0)) == pytest.approx(1 / 3)
    assert box_iou((0.0, 0.0, float("nan"), 1.0), GT) == 0.0


LONG = (
    " stands by the window of a bright kitchen in the late afternoon, looking out at the garden"
    " where the children play."
)
# (answer, ground-truth names, reward)
ICT_TABLE = [
    ("<bo>" + LONG, ["bo"], 1.0),
    ("<Bo>" + LONG, ["bo"], 1.0),  # case-insensitive
    ("<bo>" + LONG, ["<bo>"], 1.0),  # names may be given with brackets
    ("bo" + LONG, ["bo"], 0.0),  # bare name: not the bracketed identity
    ("<bob>" + LONG, ["bo"], 0.0),  # another name that starts alike
    ("<bo> sits.", ["bo"], 0.0),  # too short
    ("<bo>" + "x" * 96, ["bo"], 1.0),  # exactly 100 characters
    ("<bo>" + "x" * 95, ["bo"], 0.0),  # 99 characters
    ("   <bo>" + "x" * 95 + "   ", ["bo"], 0.0),  # surrounding white space does not count
    ("<bo></bo>" + LONG, ["bo"], 0.0),  # closing tag: reward hacking
    ("<bo>" + LONG + " </BO>", ["bo"], 0.0),
    ("<bo>" + LONG + " </div>", ["bo"], 1.0),  # only the concept's own closing tag counts
    ("A dog" + LONG, ["bo"], 0.0),
    ("<bo> and <thao>" + LONG, ["bo", "thao"], 1.0),
    ("<thao>" + LONG, ["bo", "thao"], 0.5),
    ("<bo> with <thao>" + LONG, ["bo", "thao", "mam", "kiki"], 0.5),
    ("<bo> with <thao></thao>" + LONG, ["bo", "thao"], 0.0),
    ("<bo> and <thao>", ["bo", "thao"], 0.0),  # multi-concept, too short
    ("<bo>" + LONG, ["bo", "bo"], 1.0),  # duplicate ground truth counts once
]


@pytest.mark.parametrize(("answer", "names", "reward"), ICT_TABLE)
def test_ict_table(answer: str, names: list[str], reward: float) -> None:
    assert score_ict(answer, names) == reward


def test_ict_minimum_length_is_configurable_and_names_are_required() -> None:
    assert score_ict("<bo> sits.", ["bo"], min_chars=5) == 1.0
    with pytest.raises(ValueError, match="at least one"):
        score_ict("<bo>" + LONG, [])


@pytest.mark.parametrize(
    ("completion", "text"),
    [
        ("plain", "plain"),
        ([{"role": "assistant", "content": "chat"}], "chat"),
        (
            [{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text"}]}],
            "a",
        ),
        (
            [
                {"role": "assistant", "content": "first"},
                {"role": "tool", "content": "ignored"},
                {"role": "assistant", "content": "last"},
            ],
            "last",
        ),
        ([{"role": "user", "content": "not an answer"}], ""),
    ],
)
def test_completion_text(completion: object, text: str) -> None:
    assert completion_text(completion) == text  # type: ignore[arg-type]


def _columns() -> dict[str, Any]:
    return {
        "task": ["oct", "vlt", "ict", "oct"],
        "label": ["yes", None, None, "no"],
        "bbox": [None, [100, 100, 200, 200], None, None],
        "names": [None, None, ["bo"], None],
    }


def test_trl_rewards_judge_only_their_own_rows() -> None:
    completions = [
        [{"role": "assistant", "content": "Yes, it is."}],
        [{"role": "assistant", "content": '```json\n{"bbox_2d": [100, 100, 200, 200]}\n```'}],
        [{"role": "assistant", "content": "<bo>" + LONG}],
        [{"role": "assistant", "content": "It is not."}],
    ]
    columns = _columns()
    assert oct_reward(completions, **columns) == [1.0, None, None, 0.0]
    assert oct_reward(completions, reference_compat=True, **columns) == [1.0, None, None, 1.0]
    assert vlt_reward(completions, **columns) == [None, 1.0, None, None]
    assert ict_reward(completions, **columns) == [None, None, 1.0, None]


def test_trl_rewards_accept_plain_strings_and_extra_trainer_kwargs() -> None:
    completions = ["no", "[0, 0, 10, 10]", "<bo>", "no"]
    extra: dict[str, Any] = {
        "prompts": ["p"] * 4,
        "completion_ids": [[1]] * 4,
        "trainer_state": None,
    }
    assert oct_reward(completions, **_columns(), **extra) == [0.0, None, None, 1.0]
    assert vlt_reward(completions, **_columns(), **extra) == [None, 0.0, None, None]
    assert ict_reward(completions, **_columns(), **extra) == [None, None, 0.0, None]


def test_trl_rewards_refuse_a_dataset_without_their_columns() -> None:
    with pytest.raises(ValueError, match="'task' and 'bbox'"):
        vlt_reward(["[0, 0, 1, 1]"], task=["vlt"])
    with pytest.raises(ValueError, match="every row"):
        oct_reward(["yes", "no"], task=["oct"], label=["yes"])


def test_reward_functions_carry_their_settings_and_names() -> None:
    oct_fn, vlt_fn, ict_fn = reward_functions(iou_threshold=0.1, min_chars=5, reference_compat=True)
    columns = _columns()
    completions = ["not it", "[150, 150, 250, 250]", "<bo> sits", "nope"]
    assert oct_fn(completions, **columns) == [0.0, None, None, 1.0]
    assert vlt_fn(completions, **columns) == [None, 1.0, None, None]
    assert ict_fn(completions, **columns) == [None, None, 1.0, None]
    names = [getattr(f, "func", f).__name__ for f in (oct_fn, vlt_fn, ict_fn)]
    assert names == ["oct_reward", "vlt_reward", "ict_reward"]


# --- reference_compat: the reference training script's parsing, worked out by hand ------------


def test_reference_iou_counts_inclusive_pixels_in_the_intersection_only() -> None:
    # [0,0,10,10] vs [5,5,15,15]: intersection x 5..9, y 5..9 -> 5 x 5 = 25 pixels;
    # areas 100 + 100; union 175 -> 25/175 (the exact IoU would be 25/175 too)
    assert reference_iou([0, 0, 10, 10], [5, 5, 15, 15]) == pytest.approx(25 / 175)
    # [0,0,10,10] vs [0,0,11,10]: x 0..9, y 0..9 -> 100; areas 100 + 110 -> union 110
    assert reference_iou([0, 0, 10, 10], [0, 0, 11, 10]) == pytest.approx(100 / 110)
    # touching boxes share no pixel; a degenerate pair divides by 1, not 0
    assert reference_iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0
    assert reference_iou([3, 3, 3, 3], [3, 3, 3, 3]) == 0.0


def test_reference_vlt_takes_integer_boxes_only() -> None:
    target = [100, 100, 200, 200]
    assert score_vlt('{"bbox_2d": [100, 100, 200, 200]}', target, reference_compat=True) == 1.0
    # decimals are no box for the reference's pattern; the strict parser reads them
    assert score_vlt("[100.0, 100.0, 200.0, 200.0]", target, reference_compat=True) == 0.0
    assert score_vlt("[100.0, 100.0, 200.0, 200.0]", target) == 1.0
    # a negative number: no match for the reference pattern (the box after it counts)
    answer = "[-5, 0, 10, 10] then [100, 100, 200, 200]"
    assert score_vlt(answer, target, reference_compat=True) == 1.0


def test_reference_ict_is_case_sensitive_and_checks_closing_tags_on_single_rows_only() -> None:
    pad = " " + "x" * 100
    assert score_ict("<Bo> naps." + pad, ["bo"], reference_compat=True) == 0.0
    assert score_ict("<Bo> naps." + pad, ["bo"]) == 1.0
    assert score_ict("<bo></bo>" + pad, ["bo"], reference_compat=True) == 0.0
    # a multi-concept row: one of two names found, the closing tag is not checked -> 1/2
    assert score_ict("<bo></bo>" + pad, ["bo", "mira"], reference_compat=True) == 0.5
    assert score_ict("<bo></bo>" + pad, ["bo", "mira"]) == 0.0
    # length counts the raw answer: 100 spaces around a name are enough for the reference
    assert score_ict(" " * 50 + "<bo>" + " " * 50, ["bo"], reference_compat=True) == 1.0
    assert score_ict(" " * 50 + "<bo>" + " " * 50, ["bo"]) == 0.0


def test_reward_functions_default_to_the_reference_parsing() -> None:
    oct_fn, vlt_fn, ict_fn = reward_functions()
    assert oct_fn(["nothing"], task=["oct"], label=["no"]) == [1.0]  # "no" inside "nothing"
    assert vlt_fn(["[1.0, 1.0, 9.0, 9.0]"], task=["vlt"], bbox=[[1, 1, 9, 9]]) == [0.0]
    assert ict_fn(["<Bo> " + "x" * 100], task=["ict"], names=[["bo"]]) == [0.0]
