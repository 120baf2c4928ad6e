"""Retrieval metrics, the collapse guard and the weak-label schemes."""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluation import (
    MAX_RANDOM_COSINE,
    CollapseError,
    check_not_collapsed,
    check_not_crowded,
    embedding_spread,
    map_at_r_and_precision,
    retrieval_metrics,
    score_distribution,
)
from models.labels import multi_hot, triplet_classes

GENRES = [("Action", "Comedy"), ("Action",), ("Comedy",), ("Drama",), ("Drama", "Action"), ("Comedy", "Drama")]


def test_collapsed_embeddings_fail_the_guard_and_spread_ones_pass() -> None:
    rng = np.random.default_rng(0)
    point = rng.normal(size=128)
    collapsed = point + 1e-3 * rng.normal(size=(50, 128))
    with pytest.raises(CollapseError, match="collapsed"):
        check_not_collapsed(collapsed)
    with pytest.raises(CollapseError):
        check_not_collapsed(np.full((4, 8), np.nan))
    assert check_not_collapsed(rng.normal(size=(50, 128))) == pytest.approx(1.0, abs=0.05)


def test_zero_vectors_are_collapsed() -> None:
    vectors = np.random.default_rng(1).normal(size=(6, 4))
    vectors[2] = 0.0
    with pytest.raises(CollapseError, match="1 of 6 have no direction"):
        check_not_collapsed(vectors)


def test_crowded_space_fails_its_guard_though_not_collapsed_and_centring_fixes_it() -> None:
    rng = np.random.default_rng(2)
    spread_out = rng.normal(size=(200, 32))
    crowded = spread_out + 12.0  # one shared component: every pair scores about 0.99
    assert check_not_collapsed(crowded) > 1e-3
    with pytest.raises(CollapseError, match="crowded: .* median cosine 0.9"):
        check_not_crowded(crowded)
    assert check_not_crowded(crowded - crowded.mean(axis=0)) < 0.1 < MAX_RANDOM_COSINE < 0.99


def test_score_distribution_by_hand() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # cosines 0, 0, -1 for each
    scores = score_distribution(vectors, k=2)
    assert scores == {"cosine_neighbour_2_median": 0.0, "cosine_random_median": 0.0}
    assert score_distribution(vectors, k=3)["cosine_neighbour_3_median"] == -1.0
    assert set(score_distribution(vectors)) <= set(retrieval_metrics(vectors, GENRES[:4]))


def test_spread_is_mean_pairwise_cosine_distance() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    # pairs: (0,1) 1, (0,2) 2, (1,2) 1 -> mean 4/3
    assert embedding_spread(vectors) == pytest.approx(4 / 3)


def test_map_at_r_by_hand() -> None:
    # query 0 has relevant items 1 and 3 (R = 2); ranking 1 (rel), 2 (not), 3 (rel) -> AP@R = (1/1 + 0) / 2
    embeddings = np.array([[1.0, 0.0], [0.99, 0.14], [0.9, 0.44], [0.0, 1.0]])
    relevant = np.zeros((4, 4), bool)
    relevant[0, [1, 3]] = True
    map_at_r, precision = map_at_r_and_precision(embeddings, relevant, k=2)
    assert map_at_r == pytest.approx(0.5)
    assert precision == pytest.approx(0.5)


def test_metrics_are_undefined_when_no_poster_has_a_relevant_one() -> None:
    embeddings = np.eye(3)
    assert map_at_r_and_precision(embeddings, np.eye(3, dtype=bool)) == (None, None)
    assert retrieval_metrics(embeddings, [["Action"], ["Comedy"], ["Drama"]])["map_at_r_any"] is None


def test_perfect_embedding_scores_one_and_random_scores_less() -> None:
    genre_sets = [GENRES[i % len(GENRES)] for i in range(60)]
    perfect = multi_hot([g[:1] for g in genre_sets], ["Action", "Comedy", "Drama"]) + 1e-3
    metrics = retrieval_metrics(perfect, genre_sets)
    assert metrics["map_at_r_primary"] == pytest.approx(1.0)
    assert metrics["precision_at_10_primary"] == pytest.approx(1.0)
    random = retrieval_metrics(np.random.default_rng(1).normal(size=(60, 16)), genre_sets)
    assert random["map_at_r_primary"] < 0.6


def test_label_schemes() -> None:
    primary = triplet_classes(GENRES, "primary")
    assert primary[0] == primary[1] and primary[0] != primary[2]
    genre_set = triplet_classes(GENRES, "genre_set")
    assert genre_set[0] != genre_set[1] and genre_set[4] == triplet_classes([("Action", "Drama")], "genre_set")[0]
    singles = {g: triplet_classes([(g,)], "primary")[0] for g in ("Action", "Comedy", "Drama")}
    draws = np.stack([triplet_classes(GENRES, "sampled", epoch=e) for e in range(20)])
    for poster, genres in enumerate(GENRES):
        assert set(draws[:, poster]) == {singles[g] for g in genres}, "every genre of a poster is drawn, only those"
    np.testing.assert_array_equal(draws[3], triplet_classes(GENRES, "sampled", epoch=3))
    with pytest.raises(ValueError, match="unknown label scheme"):
        triplet_classes(GENRES, "vibes")
