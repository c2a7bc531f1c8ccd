"""Grounding scores against counts and ratios worked out by hand in each test."""

from __future__ import annotations

from fractions import Fraction

import pytest

from model.grounding import ConceptName
from model.metrics import (
    GroundingSample,
    Matcher,
    SlotOutcome,
    score_grounding,
    slot_outcomes,
)


def sample(caption, *concepts):
    return GroundingSample(caption, tuple(concepts))


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
    # naming one ground-truth concept does not fill the other's slot
    assert slot_outcomes(["bo", "butin"], {"bo"}) == [SlotOutcome.CORRECT, SlotOutcome.MISS]


def test_one_two_and_four_concept_images_micro_averaged():
    samples = [
        sample("<bo> rolls on the grass.", "bo"),  # correct
        sample("<bo> sleeps on the sofa.", "butin"),  # MISS: names another concept
        sample("A dog sleeps.", "bo"),  # empty
        sample("<butin> and a woman.", "butin", "thao"),  # correct + MISS
        sample("<bo>, <thao>, <ciin> and <butin> at a picnic.", "bo", "butin", "thao", "ciin"),
    ]
    for matcher in Matcher:
        scores = score_grounding(samples, matcher=matcher)
        # correct: 1 + 1 + 4 = 6, MISS: 1 + 1 = 2, empty: 1 -> P = 6/8, R = 6/9
        assert_scores(scores, correct=6, miss=2, empty=1, images=5)
        assert scores.precision == pytest.approx(float(Fraction(6, 8)))
        assert scores.f1 == pytest.approx(float(f1(Fraction(6, 8), Fraction(6, 9))))


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
    # official: the bo slot sees only <butin> -> MISS; butin correct -> P = R = 1/2
    assert_scores(official, correct=1, miss=1, empty=0, images=1)


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
