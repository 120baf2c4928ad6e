"""Matching recognized lines to the catalogue's title text."""

from __future__ import annotations

import pytest

from localize.match import match_title, normalized, part_weight, similarity, title_article, title_forms


def test_catalogue_titles_become_their_displayed_forms() -> None:
    assert title_forms("Quiet Earth, The") == ["The Quiet Earth", "Quiet Earth"]
    assert title_forms("Troll Hunter, The (Trolljegeren)") == ["The Troll Hunter", "Troll Hunter", "Trolljegeren"]
    assert title_forms("Avengers: Age of Ultron") == ["Avengers: Age of Ultron", "Avengers"]
    assert title_forms("Avengers: Age of Ultron", subtitle_optional=False) == ["Avengers: Age of Ultron"]
    assert title_forms("Amelie (a.k.a. Le Fabuleux Destin)") == ["Amelie", "Le Fabuleux Destin"]


@pytest.mark.parametrize(
    ("title", "article"),
    [
        ("Quiet Earth, The", "the"),
        ("The Quiet Earth", "the"),
        ("Boot, Das", "das"),
        ("Troll Hunter, The (Trolljegeren)", "the"),
        ("A Beautiful Mind", "a"),
        ("Die Hard", None),  # "die" leads as a word here, not as an article
        ("Alien", None),
    ],
)
def test_the_article_a_title_is_displayed_with(title: str, article: str | None) -> None:
    assert title_article(title) == article


def test_texts_compare_without_case_spaces_or_punctuation() -> None:
    assert normalized("GREEN-INFERNO!") == normalized("Green Inferno") == "greeninferno"
    assert similarity("BOYFRIENDS BACK", "My Boyfriend's Back") >= 0.8
    assert similarity("Nature Calls", "Brother Bear") < 0.4


def test_stacked_lines_are_put_in_title_order_and_the_tagline_left_out() -> None:
    texts = ["BEAR", "Nature Calls", "BROTHER", "Saturday Nov. 1"]
    assert match_title(texts, "Brother Bear") == ((2, 0), 1.0)
    chosen, score = match_title(
        ["IKNOW", "LASTSUMMER", "WHATYOU DID", "FROM THE CREATOR OF SCREAM"], "I Know What You Did Last Summer"
    )
    assert chosen == (0, 2, 1) and score == 1.0


def test_a_title_that_no_line_reads_as_matches_nothing() -> None:
    assert match_title(["KURT RUSSELL", "COMING SOON"], "Graceland") == ((), 0.0)
    assert match_title([], "Graceland") == ((), 0.0)


def test_a_single_character_line_joins_when_it_is_a_word_of_the_title() -> None:
    assert match_title(["SANTA", "CLAUSE", "2", "NOVEMBER"], "Santa Clause 2, The") == ((0, 1, 2), 1.0)
    assert match_title(["SANTA", "CLAUSE", "X"], "Santa Clause 2, The") == (
        (0, 1),
        match_title(["SANTACLAUSE"], "Santa Clause 2")[1],
    )


def test_a_read_weighs_by_the_title_letters_it_reads_less_the_stray_ones() -> None:
    assert part_weight("UTPOST", "Outpost") > part_weight("UTPOS", "Outpost") > 0  # a letter the other missed
    assert part_weight("GIRL", "Girl Next Door, The") > part_weight("GIRLL", "Girl Next Door, The")  # a stray one
    assert part_weight("Termtnal", "Terminal, The") > part_weight("Temtnal", "Terminal, The")
    assert part_weight("KURT RUSSELL", "Outpost") == part_weight("x", "Outpost") == 0
