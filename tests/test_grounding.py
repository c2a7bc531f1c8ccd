"""The robust and the official concept-name matchers on captions a model really writes."""

from __future__ import annotations

import pytest

from model.grounding import (
    ConceptName,
    bare_name,
    find_mentions,
    mentioned_names,
    official_mentions,
)

POOL = [
    ConceptName("bo"),
    ConceptName("bo jackson"),
    ConceptName("o'neil"),
    ConceptName("mr. whiskers"),
    ConceptName("ironman", ("Iron Man",)),
    ConceptName("James"),
]


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("<bo> runs in the park.", ["bo"]),
        ("bo runs in the park.", ["bo"]),
        ("<BO> and Bo and bO", ["bo"]),
        ("A photo of <bo>'s toy", ["bo"]),
        ("A photo of bo’s toy", ["bo"]),
        ("James' hat is red", ["James"]),
        ('"<bo>", (bo) and [bo]!', ["bo"]),
        ("Mr.  Whiskers sleeps", ["mr. whiskers"]),
        ("mr.\nwhiskers sleeps", ["mr. whiskers"]),
        ("<mr. whiskers> sleeps", ["mr. whiskers"]),
        ("O’Neil’s cat", ["o'neil"]),
        ("IRON MAN flies", ["ironman"]),
        ("<bo> meets <ironman>", ["bo", "ironman"]),
        ("<ironman> meets <bo>", ["ironman", "bo"]),
    ],
)
def test_robust_matcher_finds_names(caption, expected):
    assert mentioned_names(caption, POOL) == expected


@pytest.mark.parametrize(
    "caption",
    [
        "bob walks with his elbow up",
        "bo2 and bo_x",
        "a bo-like shape by el-bo",
        "the closing tag </bo> is not a name",
        "mr whiskers without the dot",
        "a bobo doll",
    ],
)
def test_robust_matcher_needs_whole_words(caption):
    assert find_mentions(caption, [ConceptName("bo"), ConceptName("mr. whiskers")]) == []


@pytest.mark.parametrize(
    ("caption", "name"),
    [("ZOË naps", "Zoë"), ("ΣΟΦΙΑ smiles", "σοφια"), ("İLK walks", "ilk"), ("ıLK walks", "ILK")],
)
def test_case_insensitive_beyond_ascii(caption, name):
    # İ and ı are the letters str.casefold treats differently from re.IGNORECASE
    assert mentioned_names(caption, [name]) == [name]


def test_longest_name_wins_at_a_position():
    mentions = find_mentions("Bo Jackson's dog is <bo>", POOL)
    assert [(m.name, m.text) for m in mentions] == [("bo jackson", "Bo Jackson"), ("bo", "<bo>")]


def test_mention_spans_point_into_the_caption():
    caption = "Here <bo>, there IRON  MAN."
    mentions = find_mentions(caption, POOL)
    assert [caption[m.start : m.end] for m in mentions] == ["<bo>", "IRON  MAN"]
    assert [m.via_alias for m in mentions] == [False, True]


def test_own_name_beats_another_concepts_display_name():
    names = [ConceptName("max"), ConceptName("maximilian", ("Max",))]
    assert mentioned_names("max sleeps", names) == ["max"]


def test_shared_display_name_counts_for_both_concepts():
    names = [ConceptName("dog1", ("Rex",)), ConceptName("dog2", ("Rex",))]
    assert sorted(mentioned_names("Rex barks", names)) == ["dog1", "dog2"]


def test_names_given_with_brackets_are_the_same_names():
    assert mentioned_names("<bo> naps", ["<bo>"]) == ["bo"]
    assert official_mentions("<bo> naps", ["<bo>"]) == ["bo"]


def test_bare_name_strips_brackets_and_extra_space():
    assert bare_name("  <Mr.   Whiskers> ") == "Mr. Whiskers"


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("<bo> runs.", ["bo"]),
        ("(<bo>), bo!", ["bo"]),
        ('"Bo" waves', ["bo"]),
        ("-bo- and 'bo'", ["bo"]),
        ("<bo>'s toy", []),  # a possessive is not stripped
        ("bo’s toy", []),
        ("bob and elbow", []),
        ("</bo> closing tag", []),
        ("Bo Jackson waves", ["bo"]),  # multi-word names are never whole tokens
        ("Mr. Whiskers sleeps", []),
        ("IRON MAN flies", []),  # display names are not used
        ("<ironman> flies", ["ironman"]),
        ("<bo>s toy", []),
    ],
)
def test_official_matcher_follows_the_paper(caption, expected):
    assert official_mentions(caption, POOL) == expected


def test_official_matcher_case_sensitive_mode():
    assert official_mentions("<anya> waves", ["Anya"], case_sensitive=True) == []
    assert official_mentions("<Anya> waves", ["Anya"], case_sensitive=True) == ["Anya"]
    assert official_mentions("<anya> waves", ["Anya"]) == ["Anya"]


def test_official_matcher_reports_each_concept_once_by_first_appearance():
    assert official_mentions("James, then bo, then <bo> and James", POOL) == ["James", "bo"]
