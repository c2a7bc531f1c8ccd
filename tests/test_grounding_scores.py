"""Grounding scores against counts and ratios worked out by hand in each test."""

from __future__ import annotations

from fractions import Fraction

import pytest

from model.grounding import ConceptName
from model.grounding_scores import (
    GroundingSample,
    Matcher,
    SlotOutcome,
    score_grounding,
    slot_outcomes,
)


def sample(caption, *concepts):
    """Ground truth written as the paper's result files write it: ``<name>``."""
    return GroundingSample(caption, tuple(c if c.startswith("<") else f"<{c}>" for c in concepts))


def f1(p, r):
    return 2 * p * r / (p + r) if p + r else Fraction(0)


def assert_scores(scores, *, correct, miss, empty, images):
    assert (scores.correct, scores.miss, scores.empty) == (correct, miss, empty)
    assert scores.images == images
    assert scores.slots == correct + miss + empty
    p = Fraction(correct, correct + miss) if correct + miss else Fraction(0)
    r = Fraction(correct, scores.slots) if scores.slots else Fraction(0)
    assert scores.precision == pytest.approx(float(p))
    assert scores.recall == pytest.approx(float(r))
    assert scores.f1 == pytest.approx(float(f1(p, r)))


def test_slot_outcomes_for_each_branch():
    assert slot_outcomes(["bo"], {"bo"}) == [SlotOutcome.CORRECT]
    assert slot_outcomes(["bo"], {"butin"}) == [SlotOutcome.MISS]
    assert slot_outcomes(["bo"], set()) == [SlotOutcome.EMPTY]
    # naming one ground-truth concept does not fill the other's slot, nor make it a MISS
    assert slot_outcomes(["bo", "butin"], {"bo"}) == [SlotOutcome.CORRECT, SlotOutcome.EMPTY]
    assert slot_outcomes(["bo", "butin"], {"bo", "thao"}) == [SlotOutcome.CORRECT, SlotOutcome.MISS]


def test_one_two_and_four_concept_images_micro_averaged():
    samples = [
        sample("<bo> rolls on the grass.", "bo"),  # correct
        sample("<bo> sleeps on the sofa.", "butin"),  # MISS: names another concept
        sample("A dog sleeps.", "bo"),  # empty
        sample("<butin> and a woman.", "butin", "thao"),  # correct + empty
        sample("<butin> and <bo>.", "butin", "thao"),  # correct + MISS (bo is not theirs)
        sample("<bo>, <thao>, <ciin> and <butin> at a picnic.", "bo", "butin", "thao", "ciin"),
    ]
    for matcher in Matcher:
        scores = score_grounding(samples, matcher=matcher)
        # correct: 1 + 1 + 1 + 4 = 7, MISS: 1 + 1 = 2, empty: 1 + 1 = 2 -> P = 7/9, R = 7/11
        assert_scores(scores, correct=7, miss=2, empty=2, images=6)
        assert scores.precision == pytest.approx(float(Fraction(7, 9)))
        assert scores.f1 == pytest.approx(float(f1(Fraction(7, 9), Fraction(7, 11))))


def test_nothing_named_gives_zero_precision_not_an_error():
    scores = score_grounding([sample("A dog.", "bo"), sample("A cat.", "henry")])
    assert_scores(scores, correct=0, miss=0, empty=2, images=2)
    assert (scores.precision, scores.recall, scores.f1) == (0.0, 0.0, 0.0)


def test_no_samples_scores_zero():
    assert_scores(score_grounding([]), correct=0, miss=0, empty=0, images=0)


def test_multi_word_name_only_robust():
    samples = [sample("Mr. Whiskers naps by the window.", "mr. whiskers"), sample("<bo>", "bo")]
    robust = score_grounding(samples, matcher=Matcher.ROBUST)
    official = score_grounding(samples, matcher=Matcher.OFFICIAL)
    assert_scores(robust, correct=2, miss=0, empty=0, images=2)  # P = R = 2/2
    assert_scores(official, correct=1, miss=0, empty=1, images=2)  # P = 1/1, R = 1/2
    assert official.f1 == pytest.approx(float(f1(Fraction(1), Fraction(1, 2))))


def test_possessive_turns_correct_into_miss_for_the_official_matcher():
    samples = [sample("<bo>'s friend <butin> waits.", "bo", "butin")]
    robust = score_grounding(samples, matcher=Matcher.ROBUST)
    official = score_grounding(samples, matcher=Matcher.OFFICIAL)
    assert_scores(robust, correct=2, miss=0, empty=0, images=1)
    # official: the bo slot sees only <butin>, a ground-truth concept -> empty; butin
    # correct -> P = 1/1, R = 1/2
    assert_scores(official, correct=1, miss=0, empty=1, images=1)


def test_display_names_from_the_pool_count_for_the_robust_matcher_only():
    samples = [sample("Iron Man lands on the roof.", "ironman"), sample("<bo>", "bo")]
    pool = [ConceptName("ironman", ("Iron Man",))]
    with_names = score_grounding(samples, pool=pool)
    without_names = score_grounding(samples)
    official = score_grounding(samples, matcher=Matcher.OFFICIAL, pool=pool)
    assert_scores(with_names, correct=2, miss=0, empty=0, images=2)
    assert_scores(without_names, correct=1, miss=0, empty=1, images=2)
    assert_scores(official, correct=1, miss=0, empty=1, images=2)


def test_explicit_pool_widens_what_counts_as_miss():
    samples = [sample("<henry> naps.", "bo")]
    assert_scores(score_grounding(samples), correct=0, miss=0, empty=1, images=1)
    widened = score_grounding(samples, pool=["henry"])
    assert_scores(widened, correct=0, miss=1, empty=0, images=1)  # P = 0/1, R = 0/1


def test_concept_identity_ignores_brackets_and_case():
    samples = [sample("<anya> smiles.", "<Anya>"), sample("Bo runs.", "bo")]
    assert_scores(score_grounding(samples), correct=2, miss=0, empty=0, images=2)
    official = score_grounding(samples, matcher=Matcher.OFFICIAL)
    assert_scores(official, correct=2, miss=0, empty=0, images=2)


def test_case_sensitive_official_matcher():
    samples = [sample("<anya> smiles.", "<Anya>"), sample("<Bo> and <bo>.", "bo")]
    scores = score_grounding(samples, matcher=Matcher.OFFICIAL, case_sensitive=True)
    # <anya> is not <Anya>: empty; <bo> matches exactly: correct -> P = 1/1, R = 1/2
    assert_scores(scores, correct=1, miss=0, empty=1, images=2)


def test_case_sensitive_is_refused_for_the_robust_matcher():
    with pytest.raises(ValueError, match="official"):
        score_grounding([], matcher=Matcher.ROBUST, case_sensitive=True)


def test_scores_as_dict_carry_counts_and_ratios():
    scores = score_grounding([sample("<bo> and <butin>", "bo"), sample("nothing", "butin")])
    # bo: correct; butin: empty -> P = 1/1, R = 1/2
    assert scores.as_dict() == {
        "images": 2,
        "slots": 2,
        "correct": 1,
        "miss": 0,
        "empty": 1,
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(float(f1(Fraction(1), Fraction(1, 2)))),
    }


# --- The official matcher against the paper's evaluation scripts, counted by hand ---------------

FOUR = ("<thor>", "<hulk>", "<loki>", "<odin>")


def test_two_of_four_named_and_nothing_else_is_two_correct_two_empty():
    # The old rule (any other concept named -> MISS) gave 2 MISS here.
    for matcher in Matcher:
        scores = score_grounding([sample("<thor> and <hulk> fight.", *FOUR)], matcher=matcher)
        assert_scores(scores, correct=2, miss=0, empty=2, images=1)  # P = 2/2, R = 2/4


def test_two_of_four_plus_a_concept_outside_the_ground_truth_is_two_miss():
    samples = [
        sample("<thor>, <hulk> and <vision> pose.", *FOUR),
        sample("A robot.", "<vision>"),  # puts <vision> in the pool; its slot is empty
    ]
    for matcher in Matcher:
        scores = score_grounding(samples, matcher=matcher)
        assert_scores(scores, correct=2, miss=2, empty=1, images=2)  # P = 2/4, R = 2/5


def test_empty_caption_and_end_of_sequence_marker():
    samples = [sample("", *FOUR), sample("</s>", "<thor>"), sample("<thor></s>", "<thor>")]
    scores = score_grounding(samples, matcher=Matcher.OFFICIAL)
    # 4 + 1 empty; "<thor></s>" is the token <thor> once </s> is removed -> correct
    assert_scores(scores, correct=1, miss=0, empty=5, images=3)


def test_same_concept_written_in_two_cases_follows_the_paper():
    # The pool holds "<Thor>" and "<thor>". Lower-cased, both are "thor", but the scripts decide
    # "another concept" by the strings as written: for the first image "<Thor>" is not one of
    # its ground-truth strings, so naming thor makes its unnamed slots MISS.
    samples = [
        sample("<thor> and <hulk> fight.", *FOUR),
        sample("<Thor> waves.", "<Thor>", "<loki>"),
    ]
    official = score_grounding(samples, matcher=Matcher.OFFICIAL)
    # image 1: C C M M; image 2: thor C, loki M ("<thor>" is not its string) -> 3 C, 3 M
    assert_scores(official, correct=3, miss=3, empty=0, images=2)
    sensitive = score_grounding(samples, matcher=Matcher.OFFICIAL, case_sensitive=True)
    # two-concept script: <Thor> and <thor> are different concepts and neither image names
    # the other's -> image 1: C C E E; image 2: C E -> P = 3/3, R = 3/6
    assert_scores(sensitive, correct=3, miss=0, empty=3, images=2)
    # robust: one concept (case-folded) -> image 1: C C E E; image 2: C E
    assert_scores(score_grounding(samples), correct=3, miss=0, empty=3, images=2)


def test_same_concept_twice_in_one_image_scores_two_slots():
    scores = score_grounding([sample("<bo> naps.", "<bo>", "<bo>")], matcher=Matcher.OFFICIAL)
    assert_scores(scores, correct=2, miss=0, empty=0, images=1)


def test_ground_truth_written_without_brackets_matches_only_the_bare_token():
    # The scripts compare pool strings as written: "bo" is present for the token "bo" only.
    samples = [GroundingSample("<bo> naps.", ("bo",)), GroundingSample("bo naps.", ("bo",))]
    official = score_grounding(samples, matcher=Matcher.OFFICIAL)
    assert_scores(official, correct=1, miss=0, empty=1, images=2)
    assert_scores(score_grounding(samples), correct=2, miss=0, empty=0, images=2)
