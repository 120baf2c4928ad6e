"""Similar lists precomputed at publication: the live search's answers, read by /similar and by the
``recent_neighbours`` recommendations, refused when they do not fit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from test_recsvc_support import CROWDERS, Corpus, publish, settings_for, synthetic_corpus

from indexer import similar_lists
from indexer.publish import publish_index
from indexer.published import MANIFEST, VERSIONS, IndexItem, IndexVersionError, PublishedIndex, open_version
from indexer.scann_index import choose_params, exact_top_k
from recsvc import create_app, kernels, ranking
from recsvc.live_index import LiveIndex


@pytest.fixture(scope="module")
def exact_index(index_root: Path) -> PublishedIndex:
    return open_version(index_root)


@pytest.fixture(scope="module")
def wide_index(tmp_path_factory: pytest.TempPathFactory) -> PublishedIndex:
    """340 titles: the heads of five lists cover a small part of it."""
    root = tmp_path_factory.mktemp("wide-index")
    publish(root, synthetic_corpus(tmp_path_factory.mktemp("wide-images"), extra_titles=300))
    return open_version(root)


def tree_corpus(n: int = 3000, dim: int = 16, seed: int = 3) -> tuple[list[IndexItem], np.ndarray]:
    """Clustered titles, every third with a DE variant right beside it: a tree index with crowded neighbourhoods."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(30, dim))
    titles = centres[rng.integers(0, 30, n)] + rng.normal(scale=0.6, size=(n, dim))
    with_variant = np.arange(0, n, 3)
    variants = titles[with_variant] + rng.normal(scale=0.02, size=(len(with_variant), dim))
    vectors = np.concatenate([titles, variants])
    items = [IndexItem(f"t{i}", f"t{i}", f"Title {i}", "/x.jpg") for i in range(n)]
    items += [IndexItem(f"t{i}@DE", f"t{i}", f"Titel {i}", "/x_de.jpg", "DE", "de") for i in with_variant]
    return items, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def tree_index(tmp_path_factory: pytest.TempPathFactory) -> PublishedIndex:
    root = tmp_path_factory.mktemp("tree-index")
    items, vectors = tree_corpus()
    publication = publish_index(
        root, items, vectors, {}, exact_search_max_items=1000, recall_floor=0.9, keep_versions=1
    )
    assert not publication.params.exact
    return open_version(root)


@pytest.fixture(scope="module")
def sparse_tree_index(tmp_path_factory: pytest.TempPathFactory) -> PublishedIndex:
    """The tree corpus searching 2 of its 63 leaves: some titles' leaves then hold under 80 rows.

    Fixed, not tuned: the tuner settles on 3 or 4 leaves by its sample, and with 4 a build sometimes
    has no sparse title at all (ScaNN's tree is not seeded).
    """
    root = tmp_path_factory.mktemp("sparse-tree-index")
    items, vectors = tree_corpus()
    params = dataclasses.replace(
        choose_params(len(vectors), exact_search_max_items=1000),
        num_leaves=round(len(vectors) ** 0.5),
        num_leaves_to_search=2,
        history_leaves_to_search=2,
    )
    publish_index(
        root, items, vectors, {}, exact_search_max_items=1000, recall_floor=0.5, keep_versions=1, params=params
    )
    return open_version(root)


def listed(index: PublishedIndex, title_id: str, k: int) -> list[tuple[str, float]] | None:
    found = index.similar.top(int(index.title_of_row[index.row_of_key[title_id]]), k, len(index.title_ids))
    return None if found is None else [(index.title_ids[t], s) for t, s in zip(*found)]


def searched(index: PublishedIndex, title_id: str, k: int) -> list[tuple[str, float]]:
    ranked = ranking.nearest_titles(
        index, index.embeddings[index.row_of_key[title_id]], k, exclude={index.title_ids.index(title_id)}
    )
    return list(zip(ranked.title_ids(index), ranked.scores))


@pytest.mark.parametrize("which", ["wide_index", "tree_index"])
def test_lists_are_the_live_search_answers(which: str, request: pytest.FixtureRequest) -> None:
    """For every title and every k the lists can answer: the same titles in the same order, the same scores."""
    index: PublishedIndex = request.getfixturevalue(which)
    assert index.similar is not None and index.similar.depth == 20
    answered = 0
    for title_id in index.title_ids[::3] if which == "tree_index" else index.title_ids:
        for k in (1, 7, 10, 20):
            from_list = listed(index, title_id, k)
            if from_list is None:
                continue
            answered += 1
            live = searched(index, title_id, k)
            assert [t for t, _ in from_list] == [t for t, _ in live], (title_id, k)
            np.testing.assert_allclose([s for _, s in from_list], [s for _, s in live], rtol=0, atol=1e-6)
    assert answered >= 0.8 * 4 * len(index.title_ids[::3] if which == "tree_index" else index.title_ids)


def test_crowded_or_shallow_lists_defer_to_the_live_search(exact_index: PublishedIndex) -> None:
    """crowd-q's 80 rows searched hold 65 rows of five crowders: its list is partly empty and answers nothing."""
    crowd = exact_index.similar.titles[exact_index.title_ids.index("crowd-q")]
    assert 5 <= np.count_nonzero(crowd >= 0) < 20
    assert {exact_index.title_ids[t] for t in crowd[:5]} == set(CROWDERS)
    assert listed(exact_index, "crowd-q", 5) is None and listed(exact_index, "crowd-q", 20) is None
    assert (
        listed(exact_index, "t001", 20) is not None and listed(exact_index, "t001", 21) is None
    )  # deeper than any list
    for k in (5, 20, 21, 40):
        ranked = ranking.similar_titles(exact_index, exact_index.row_of_key["crowd-q"], k)
        assert (
            list(zip(ranked.title_ids(exact_index), ranked.scores)) == searched(exact_index, "crowd-q", k)
            and len(ranked.titles) == k
        )


def test_similar_titles_reads_the_lists(exact_index: PublishedIndex) -> None:
    """The service answers from the lists it was given: a version whose lists are reversed answers reversed."""
    reversed_lists = similar_lists.SimilarLists(
        exact_index.similar.titles[:, ::-1].copy(), exact_index.similar.scores[:, ::-1].copy()
    )
    flipped = PublishedIndex(
        exact_index.path,
        exact_index.manifest,
        exact_index.items,
        exact_index.embeddings,
        exact_index._searcher,
        reversed_lists,
    )
    title = exact_index.title_ids.index("t001")
    expected = [exact_index.title_ids[t] for t in exact_index.similar.titles[title][::-1][:5]]
    assert ranking.similar_titles(flipped, flipped.row_of_key["t001"], 5).title_ids(flipped) == expected


def test_distinct_titles_leave_out_the_excluded_the_unlisted_repeats_and_everything_after_nan() -> None:
    original_rows = np.array([0, 1, 2, 3, 4, 5, -1, 7, 8, 9])  # title 6 has no original poster
    ordinals = np.array([4, 2, 6, 4, 7, 2, 9, 5])
    scores = np.array([0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], np.float32)
    titles, listed = similar_lists.first_distinct_titles(ordinals, scores, original_rows, 3, exclude={4})
    assert titles == [2, 7, 9]
    assert listed == pytest.approx([0.85, 0.6, 0.4])
    scores[4] = np.nan
    assert similar_lists.first_distinct_titles(ordinals, scores, original_rows, 3, exclude={4}) == (
        [2],
        [pytest.approx(0.85)],
    )


def test_a_repeated_title_keeps_its_first_best_score_and_the_order_of_ranks() -> None:
    ordinals = np.array([5, 3, 5, 1, 3, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], np.float32)
    titles, listed = similar_lists.first_distinct_titles(ordinals, scores, np.arange(6), 10)
    assert titles == [5, 3, 1, 0]
    assert listed == pytest.approx([0.9, 0.8, 0.6, 0.4])


def test_a_version_published_without_lists_is_served_by_search(corpus: Corpus, tmp_path: Path) -> None:
    version = publish(tmp_path, corpus)
    for name in (similar_lists.TITLES_FILE, similar_lists.SCORES_FILE):
        (tmp_path / VERSIONS / version / name).unlink()
    client = create_app(settings_for(tmp_path), watch=False).test_client()
    ids = [r["id"] for r in client.get("/v1/posters/crowd-q/similar?k=10").json["results"]]
    assert len(set(ids)) == 10 and "crowd-q" not in ids and open_version(tmp_path).similar is None


def test_lists_that_do_not_fit_the_version_are_refused(corpus: Corpus, tmp_path: Path) -> None:
    """A lists file of another version (here: one title short) fails the load, so the watcher keeps the old version."""
    good = publish(tmp_path, corpus)
    bad = publish(tmp_path, corpus)
    path = tmp_path / VERSIONS / bad / similar_lists.TITLES_FILE
    np.save(path, np.load(path)[:-1])
    with pytest.raises(IndexVersionError, match="similar lists"):
        open_version(tmp_path, bad)
    (tmp_path / "CURRENT").write_text(good + "\n")
    live = LiveIndex(tmp_path, poll_seconds=0)
    live.start()
    (tmp_path / "CURRENT").write_text(bad + "\n")
    assert not live.refresh() and live.index.version == good
    assert json.loads((tmp_path / VERSIONS / good / MANIFEST).read_text())["similar_list_depth"] == 20


def test_depth_follows_the_setting(corpus: Corpus, tmp_path: Path) -> None:
    def publish_with_depth(depth: int) -> None:
        publish_index(
            tmp_path,
            corpus.items,
            corpus.embeddings,
            {},
            exact_search_max_items=100_000,
            recall_floor=0.9,
            keep_versions=1,
            similar_depth=depth,
        )

    publish_with_depth(3)
    assert open_version(tmp_path).similar.depth == 3
    with pytest.raises(ValueError, match="at least 1"):
        publish_with_depth(0)


def test_titles_whose_leaves_hold_too_few_rows_get_no_list(sparse_tree_index: PublishedIndex) -> None:
    """Most titles of the tree get a full list; one whose searched leaves hold under 80 rows gets none, and is searched."""
    tree_index = sparse_tree_index
    full = tree_index.similar.titles[:, -1] >= 0
    empty = tree_index.similar.titles[:, 0] < 0
    assert (full | empty).all() and full.mean() > 0.5
    assert empty.any()
    for title in np.flatnonzero(empty)[:20]:
        title_id = tree_index.title_ids[title]
        query = tree_index.embeddings[tree_index.row_of_key[title_id]]
        assert len(tree_index.search_leaves(query, 80)[0]) < 80
        rows, scores = tree_index.search(query, 80)  # answered exactly, not short
        np.testing.assert_array_equal(rows[0], exact_top_k(tree_index.embeddings, query[None], 80)[0])
        assert len(set(ranking.similar_titles(tree_index, tree_index.row_of_key[title_id], 20).titles)) == 20


def test_recent_neighbours_ranks_the_latest_titles_lists_by_the_recent_query(wide_index: PublishedIndex) -> None:
    """Candidates are the heads of the similar lists of the latest five history titles, less the history, ranked by the recency query."""
    index = wide_index
    history = [f"t{i:03d}" for i in (20, 60, 100, 140, 180, 220, 260, 300)]
    listed = {
        index.title_ids[t]
        for title_id in history[-ranking.NEIGHBOUR_SOURCES :]
        for t in index.similar.titles[index.title_ids.index(title_id), : ranking.NEIGHBOUR_DEPTH]
        if t >= 0
    } - set(history)
    query = ranking.recency_query(index, [index.row_of_key[t] for t in history], ranking.RECENCY_DECAY)
    for k in (10, len(listed)):  # all of them: a candidate from an older title's list would show
        expected = sorted(listed, key=lambda t: -float(index.embeddings[index.row_of_key[t]] @ query))[:k]
        ranked = ranking.recommend(index, history, k, "recent_neighbours", exclude_history=True)
        assert ranked.title_ids(index) == expected
        np.testing.assert_allclose(
            ranked.scores, [index.embeddings[index.row_of_key[t]] @ query for t in expected], atol=1e-6
        )


def test_recent_neighbours_searches_when_the_lists_hold_too_few_candidates(wide_index: PublishedIndex) -> None:
    """One title's list gives 10 candidates: k=30 is answered by ``recent``'s search of the whole index."""
    index = wide_index
    head = {index.title_ids[t] for t in index.similar.titles[index.title_ids.index("t005"), : ranking.NEIGHBOUR_DEPTH]}
    listed = ranking.recommend(index, ["t005"], 10, "recent_neighbours", exclude_history=True)
    assert set(listed.title_ids(index)) == head and len(listed.titles) == 10
    searched = ranking.recommend(index, ["t005"], 30, "recent_neighbours", exclude_history=True)
    assert (
        searched == ranking.recommend(index, ["t005"], 30, "recent", exclude_history=True)
        and len(searched.titles) == 30
    )


def test_recent_neighbours_includes_the_history_when_asked(wide_index: PublishedIndex) -> None:
    """A list never holds its own title, so with ``exclude_history`` false the history joins the candidates."""
    for history in (["t005"], ["t001", "t002", "t003"]):
        ranked = ranking.recommend(wide_index, history, 10, "recent_neighbours", exclude_history=False)
        assert set(history) <= set(ranked.title_ids(wide_index))


def test_a_catalogue_smaller_than_a_list_publishes_complete_lists(tmp_path: Path) -> None:
    """Eight titles: each list holds the seven others, and answers any k."""
    items, vectors = tree_corpus(n=8)
    items = [item for item in items if not item.is_variant]
    publish_index(tmp_path, items, vectors[:8], {}, exact_search_max_items=100, recall_floor=0.9, keep_versions=1)
    index = open_version(tmp_path)
    assert (np.count_nonzero(index.similar.titles >= 0, axis=1) == 7).all()
    assert [t for t, _ in listed(index, "t3", 7)] == [t for t, _ in searched(index, "t3", 7)]
    assert len(listed(index, "t3", 50)) == 7


def test_titles_indexed_only_through_variants_are_never_results(tmp_path: Path) -> None:
    """``ghost`` has a DE variant right beside t1 and no original: no list, search or recommendation returns it."""
    items, vectors = tree_corpus(n=200)
    items = [item for item in items if not item.is_variant]
    ghost = IndexItem("ghost@DE", "ghost", "Geist", "/ghost_de.jpg", "DE", "de")
    publish_index(
        tmp_path,
        [*items, ghost],
        np.concatenate([vectors[:200], vectors[1:2]]),
        {},
        exact_search_max_items=1000,
        recall_floor=0.9,
        keep_versions=1,
    )
    index = open_version(tmp_path)
    ghost_title = index.title_ids.index("ghost")
    assert ghost_title not in index.similar.titles
    for k in (5, 30):  # from the list, then searched live
        assert ghost_title not in ranking.similar_titles(index, index.row_of_key["t1"], k).titles
    for aggregation in ranking.AGGREGATIONS:
        assert ghost_title not in ranking.recommend(index, ["t1"], 10, aggregation, True).titles


def test_the_recency_query_of_vectors_that_cancel_out_is_the_latest_vector(wide_index: PublishedIndex) -> None:
    """A zero sum has no direction: the query falls back to the latest history vector, not NaN."""
    row = wide_index.row_of_key["t005"]
    query = kernels.unit_weighted_sum(
        np.stack([wide_index.embeddings[row], -wide_index.embeddings[row]]),
        np.array([0, 1], np.int64),
        np.ones(2, np.float32),
    )
    np.testing.assert_array_equal(query, -wide_index.embeddings[row])


def test_listed_candidates_tie_by_ordinal_and_leave_out_the_history() -> None:
    """Two lists naming overlapping titles: each candidate scored once, by its original's row (stored in
    reverse here), equal scores lower ordinal first."""
    by_title = np.array([[1, 0], [0, 1], [0.6, 0.8], [0.6, 0.8], [0.8, 0.6]], np.float32)
    lists = np.array([[2, 3, 4], [4, 3, -1], [0, 1, 3], [0, 1, 2], [0, 1, 2]], np.int32)
    titles, scores, candidates = kernels.best_listed(
        lists,
        by_title[::-1].copy(),
        np.arange(4, -1, -1, dtype=np.int64),
        np.array([0, 1], np.int64),
        np.array([0, 1], np.float32),
        5,
        3,
        3,
        True,
    )
    assert candidates == 3 and titles.tolist() == [2, 3, 4]
    np.testing.assert_allclose(scores, [0.8, 0.8, 0.6])


def test_listed_candidates_join_the_history_beside_partly_empty_lists() -> None:
    """With ``exclude_history`` false the history joins the candidates even when lists hold -1 padding."""
    embeddings = np.array([[1, 0], [0, 1], [0.6, 0.8], [0.8, 0.6]], np.float32)
    lists = np.array([[2, -1, -1], [3, 2, -1], [0, 1, 3], [0, 1, 2]], np.int32)
    titles, scores, candidates = kernels.best_listed(
        lists,
        embeddings,
        np.arange(4, dtype=np.int64),
        np.array([0, 1], np.int64),
        np.array([0, 1], np.float32),
        5,
        3,
        4,
        False,
    )
    assert candidates == 4 and titles.tolist() == [1, 2, 3, 0]


def test_recent_neighbours_with_preferences_that_pass_every_listed_title_ranks_as_without(
    wide_index: PublishedIndex,
) -> None:
    """Weights of 1, a filter every title passes or an exclusion of no listed title leave the listed ranking as
    it is; an exclusion of a listed title removes only it; the lists are those of the titles that weigh; a
    filter that rules out a listed title is answered by a filtered search."""
    index = wide_index
    history = ["t020", "t060", "t100"]
    rows = [index.row_of_key[t] for t in history]
    plain = ranking.recommend(index, history, 10, "recent_neighbours", exclude_history=True)
    candidates = {int(t) for h in history for t in index.similar.titles[index.title_ids.index(h), :10]}
    unlisted = next(t for t in range(len(index.title_ids)) if t not in candidates)
    for preferences in (
        ranking.Preferences(weights=np.ones(3)),
        ranking.Preferences(allowed=np.ones(len(index.title_ids), bool)),
        ranking.Preferences(exclude=frozenset({unlisted})),
    ):
        ranked = ranking.recommend_rows(index, rows, 10, "recent_neighbours", True, preferences)
        assert ranked.titles == plain.titles, preferences
        np.testing.assert_allclose(ranked.scores, plain.scores, atol=1e-6)
    dropped = ranking.recommend_rows(
        index, rows, 10, "recent_neighbours", True, ranking.Preferences(exclude=frozenset({plain.titles[0]}))
    )
    longer = ranking.recommend(index, history, 11, "recent_neighbours", exclude_history=True)
    assert dropped.titles == longer.titles[1:]
    six = ["t010", *history, "t140", "t180"]
    only_first = ranking.Preferences(weights=np.array([1.0, 0, 0, 0, 0, 0]))
    six_rows = [index.row_of_key[t] for t in six]
    weighted = ranking.recommend_rows(index, six_rows, 5, "recent_neighbours", True, only_first)
    searched = ranking.recommend_rows(index, six_rows, 5, "recent", True, only_first)
    assert weighted.titles[0] == searched.titles[0], "the lists of the title that weighs, not of the latest five"
    few = np.zeros(len(index.title_ids), bool)
    few[[int(t) for t in index.similar.titles[index.title_ids.index("t300"), :12]]] = True  # none of the history's
    narrow = ranking.recommend_rows(index, rows, 10, "recent_neighbours", True, ranking.Preferences(allowed=few))
    assert len(narrow.titles) == 10 and set(narrow.titles) <= set(np.flatnonzero(few).tolist())
