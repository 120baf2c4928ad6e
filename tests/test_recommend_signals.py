"""``POST /v1/recommendations`` by signal, with negatives, weights and filters: a real index version with
behaviour vectors (published by the indexer's own publisher, ScaNN searchers and all), the real app factory.

The behaviour vectors are made by hand so that every answer can be computed exactly here: titles fall in
four behaviour clusters, and the last ten titles are cold (no watches in training).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from posterrec_settings import load_settings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from test_hardening_fuzz import request_strategy
from test_recsvc_api import _closed

from indexer.behaviour_index import VECTORS, WARM
from indexer.build import staged_vectors
from indexer.publish import publish_index
from indexer.published import IndexItem, IndexVersionError, open_directory, open_version
from recsvc import create_app, ranking

TITLES, CLUSTERS, COLD_FROM = 60, 4, 50
POSTER_DIM, BEHAVIOUR_DIM, CONTEXT = 16, 8, 3
GENRES = (("Drama",), ("Comedy",), ("Horror", "Comedy"))


def title(i: int) -> str:
    return f"m{i:02d}"


def cluster(i: int) -> int:
    return i % CLUSTERS


def unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


def corpus() -> tuple[list[IndexItem], np.ndarray, np.ndarray]:
    """60 titles (m00 and m01 with a DE variant); random posters; behaviour vectors in 4 tight clusters."""
    rng = np.random.default_rng(5)
    items = [
        IndexItem(title(i), title(i), f"Title {i}", "", year=None if i == 59 else 1990 + i % 30, genres=GENRES[i % 3])
        for i in range(TITLES)
    ]
    posters = list(unit(rng.normal(size=(TITLES, POSTER_DIM))))
    for i in (0, 1):
        items.append(IndexItem(IndexItem.variant_key(title(i), "DE"), title(i), f"Titel {i}", "", region="DE"))
        posters.append(unit(posters[i] + 0.05 * rng.normal(size=POSTER_DIM)))
    centres = unit(rng.normal(size=(CLUSTERS, BEHAVIOUR_DIM)))
    behaviour = unit(centres[[cluster(i) for i in range(TITLES)]] + 0.1 * rng.normal(size=(TITLES, BEHAVIOUR_DIM)))
    return items, np.stack(posters), behaviour


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    """One index root with behaviour vectors, one with the same posters and none."""
    items, posters, behaviour = corpus()
    settings = load_settings(env={}, exact_search_max_items=1000, recall_floor=0.9)
    warm = np.arange(TITLES) < COLD_FROM
    model_manifest = {"embedding_dim": BEHAVIOUR_DIM, "context_length": CONTEXT}
    staged = staged_vectors(behaviour, warm, Path("behaviour"), model_manifest, "b" * 64, settings)
    found = {}
    for name, extra in (("behaviour", staged), ("plain", None)):
        found[name] = tmp_path_factory.mktemp(name)
        publish_index(
            found[name],
            items,
            posters,
            {"model_manifest_sha256": "p" * 64, **({"behaviour": extra.manifest} if extra else {})},
            exact_search_max_items=1000,
            recall_floor=0.9,
            keep_versions=2,
            extra_files=extra and extra.write,
        )
    return found


def client_for(root: Path, **settings):
    app = create_app(load_settings(env={}, index_root=root, index_poll_seconds=0, **settings), watch=False)
    return app.test_client()


@pytest.fixture(scope="module")
def client(roots):
    return client_for(roots["behaviour"])


@pytest.fixture(scope="module")
def plain(roots):
    return client_for(roots["plain"])


def recommend(client, **body) -> dict:
    response = client.post("/v1/recommendations", json=body)
    assert response.status_code == 200, response.json
    return response.json


def ids(body: dict) -> list[str]:
    return [result["id"] for result in body["results"]]


def exact_top(scores: np.ndarray, k: int, leave_out=(), allowed=None) -> list[str]:
    """The ``k`` best titles by ``scores`` (one per title), less ``leave_out``, among ``allowed``."""
    scores = np.asarray(scores, np.float64).copy()
    scores[[int(t[1:]) for t in leave_out]] = -np.inf
    if allowed is not None:
        scores[~allowed] = -np.inf
    order = np.argsort(-scores, kind="stable")
    return [title(i) for i in order[:k] if np.isfinite(scores[i])]


def behaviour_reference(history, k, weights=None, negative=(), leave_out=None, allowed=None) -> list[str]:
    _, _, behaviour = corpus()
    rows = [int(t[1:]) for t in history][-CONTEXT:]
    w = np.ones(len(history)) if weights is None else np.asarray(weights, np.float64)
    query = unit(w[-CONTEXT:] @ behaviour[rows])
    if negative:
        query = unit(query - 0.5 * unit(behaviour[[int(t[1:]) for t in negative]].mean(axis=0)))
    leave_out = list(history) + list(negative) if leave_out is None else leave_out
    return exact_top(behaviour @ query, k, leave_out, allowed)


# --- the published version ---------------------------------------------------------------------------------


def test_a_version_with_behaviour_vectors_serves_them_with_their_manifest(roots):
    index = open_version(roots["behaviour"])
    entry = index.manifest["behaviour"]
    assert entry["count"] == TITLES and entry["dim"] == BEHAVIOUR_DIM and entry["warm_count"] == COLD_FROM
    assert entry["model_manifest_sha256"] == "b" * 64 and entry["recall_at_10"] >= 0.9
    assert index.behaviour.embeddings.shape == (TITLES, BEHAVIOUR_DIM)
    assert index.behaviour.warm.tolist() == [i < COLD_FROM for i in range(TITLES)]
    assert open_version(roots["plain"]).behaviour is None
    assert not list((roots["plain"] / "versions").glob("*/behaviour*"))


@pytest.mark.parametrize(
    "name, damage",
    [
        (VECTORS, lambda path: np.save(path, np.zeros((TITLES - 1, BEHAVIOUR_DIM), np.float32))),
        (VECTORS, lambda path: path.write_bytes(b"not numpy")),
        (WARM, lambda path: np.save(path, np.ones(TITLES, bool))),
        (WARM, lambda path: path.unlink()),
    ],
)
def test_a_bad_behaviour_file_makes_the_version_unloadable_naming_the_file(roots, tmp_path, name, damage):
    source = open_version(roots["behaviour"]).path
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    damage(copy / name)
    with pytest.raises(IndexVersionError, match=name):
        open_directory(copy)


# --- signals -----------------------------------------------------------------------------------------------


def test_signal_defaults_to_hybrid_with_behaviour_vectors_and_to_poster_without(client, plain):
    assert recommend(client, history=["m04"])["signal"] == "hybrid"
    assert recommend(plain, history=["m04"])["signal"] == "poster"


def test_a_version_without_behaviour_answers_as_before(roots, plain):
    index = open_version(roots["plain"])
    history = ["m03", "m10", "m00"]
    for aggregation in ranking.AGGREGATIONS:
        expected = ranking.recommend(index, history, 7, aggregation, True).title_ids(index)
        body = recommend(plain, history=history, k=7, aggregation=aggregation)
        assert ids(body) == expected and body["signal"] == "poster"
        assert ids(recommend(plain, history=history, k=7, aggregation=aggregation, signal="poster")) == expected
    for signal in ("behaviour", "hybrid"):
        response = plain.post("/v1/recommendations", json={"history": history, "signal": signal})
        assert response.status_code == 400 and "signal" in response.json["detail"]


def test_behaviour_ranks_by_the_latest_context_titles_behaviour_vectors(client):
    history = ["m01", "m05", "m00", "m04", "m08"]  # cluster 1 twice, then cluster 0 (the context is 3 titles)
    body = recommend(client, history=history, k=8, signal="behaviour")
    assert body["signal"] == "behaviour"
    assert ids(body) == behaviour_reference(history, 8)
    assert {cluster(int(t[1:])) for t in ids(body)} == {0}


def test_hybrid_ranks_warm_histories_by_behaviour_and_counts_cold_titles_through_posters_only(client):
    warm_only = recommend(client, history=["m04", "m08"], k=6, signal="hybrid")
    with_cold = recommend(client, history=["m04", "m52", "m08"], k=6, signal="hybrid")  # m52: cold
    assert warm_only["signal"] == with_cold["signal"] == "hybrid"
    assert ids(warm_only) == behaviour_reference(["m04", "m08"], 6)
    assert ids(with_cold) == behaviour_reference(["m04", "m08"], 6, leave_out=["m04", "m52", "m08"])


def test_hybrid_falls_back_to_posters_for_a_history_of_cold_titles_only(client):
    hybrid = recommend(client, history=["m51", "m55"], k=5)
    poster = recommend(client, history=["m51", "m55"], k=5, signal="poster")
    assert hybrid["signal"] == "poster" and ids(hybrid) == ids(poster)
    behaviour = recommend(client, history=["m51", "m55"], k=5, signal="behaviour")  # the model's poster path
    assert ids(behaviour) == behaviour_reference(["m51", "m55"], 5)


def test_hybrid_blends_behaviour_and_poster_similarity_with_the_configured_weight(roots):
    weighted = client_for(roots["behaviour"], hybrid_poster_weight=0.5)
    _, posters, behaviour = corpus()
    history = ["m02", "m06", "m51"]
    body = recommend(weighted, history=history, k=10, aggregation="mean")
    warm_query = unit(behaviour[[2, 6]].sum(axis=0))
    poster_query = unit(posters[[2, 6, 51]].sum(axis=0))
    expected = exact_top(behaviour @ warm_query + 0.5 * (posters[:TITLES] @ poster_query), 10, history)
    assert body["signal"] == "hybrid" and ids(body) == expected


# --- negatives and weights ---------------------------------------------------------------------------------


def test_negative_examples_move_the_query_away_and_are_never_returned(client):
    history, negative = ["m04", "m08", "m12"], ["m16", "m20"]
    body = recommend(client, history=history, negative=negative, k=8, signal="behaviour")
    assert ids(body) == behaviour_reference(history, 8, negative=negative)
    assert ids(body) != behaviour_reference(history, 8)
    _, posters, _ = corpus()
    poster_body = recommend(client, history=history, negative=negative, k=8, signal="poster", aggregation="mean")
    query = unit(unit(posters[[4, 8, 12]].sum(axis=0)) - 0.5 * unit(posters[[16, 20]].sum(axis=0)))
    assert ids(poster_body) == exact_top(posters[:TITLES] @ query, 8, history + negative)


def test_an_unknown_negative_id_is_a_404_naming_the_field(client):
    response = client.post("/v1/recommendations", json={"history": ["m04"], "negative": ["m04", "nope"]})
    assert response.status_code == 404 and "negative" in response.json["detail"]


@pytest.mark.parametrize("signal", ["poster", "behaviour"])
def test_a_zero_weight_drops_a_history_item_from_the_query(client, signal):
    weighted = recommend(client, history=["m04", "m09"], weights=[1, 0], k=6, signal=signal, aggregation="mean")
    alone = recommend(client, history=["m04"], exclude=["m09"], k=6, signal=signal, aggregation="mean")
    assert ids(weighted) == ids(alone)
    assert ids(weighted) != ids(recommend(client, history=["m04", "m09"], k=6, signal=signal, aggregation="mean"))


def test_weights_scale_each_items_pull(client):
    history = ["m04", "m09"]
    body = recommend(client, history=history, weights=[1, 3], k=8, signal="behaviour")
    assert ids(body) == behaviour_reference(history, 8, weights=[1, 3])


# --- filters, before ranking -------------------------------------------------------------------------------

FILTERS = {
    "genres": ({"genres": ["Horror"]}, lambda i: i % 3 == 2),
    "two genres": ({"genres": ["Drama", "Horror"]}, lambda i: i % 3 != 1),
    "year_min": ({"year_min": 2010}, lambda i: i != 59 and 1990 + i % 30 >= 2010),
    "year_max": ({"year_max": 1999}, lambda i: i != 59 and 1990 + i % 30 <= 1999),
    "years": ({"year_min": 2000, "year_max": 2004}, lambda i: i != 59 and 2000 <= 1990 + i % 30 <= 2004),
    "exclude": ({"exclude": [title(i) for i in range(0, 60, 2)] + ["unknown"]}, lambda i: i % 2 == 1),
}


@pytest.fixture(params=[ranking.FILTERED_EXACT_MAX_ROWS, 0], ids=["scored exactly", "search widened"])
def filter_path(request, monkeypatch):
    """Filters that leave few rows are scored exactly; 0 makes every filter widen the ScaNN search instead."""
    monkeypatch.setattr(ranking, "FILTERED_EXACT_MAX_ROWS", request.param)


@pytest.mark.parametrize("name", FILTERS)
@pytest.mark.parametrize("signal", ["poster", "behaviour", "hybrid"])
def test_each_filter_is_applied_before_ranking_so_k_results_come_back(client, filter_path, name, signal):
    fields, passes = FILTERS[name]
    history = ["m03", "m07"]
    k = min(10, sum(passes(i) for i in range(TITLES) if title(i) not in history))
    body = recommend(client, history=history, k=k, signal=signal, **fields)
    assert len(body["results"]) == k
    assert all(passes(int(t[1:])) for t in ids(body)), ids(body)
    if signal == "behaviour":
        allowed = np.array([passes(i) for i in range(TITLES)])
        assert ids(body) == behaviour_reference(history, k, allowed=allowed)


def test_a_filter_that_leaves_fewer_than_k_titles_returns_them_all(client, filter_path):
    body = recommend(client, history=["m03"], genres=["Horror"], year_min=2015, k=20, signal="poster")
    expected = {title(i) for i in range(TITLES) if i % 3 == 2 and i != 59 and 1990 + i % 30 >= 2015}
    assert set(ids(body)) == expected and len(ids(body)) == len(expected)


# --- bad values --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"signal": "votes"}, "signal"),
        ({"signal": 1}, "signal"),
        ({"negative": "m04"}, "negative"),
        ({"negative": [""]}, "negative"),
        ({"weights": [1]}, "weights"),
        ({"weights": [1, -1]}, "weights"),
        ({"weights": [0, 0]}, "weights"),
        ({"weights": [1, True]}, "weights"),
        ({"weights": "1,1"}, "weights"),
        ({"genres": "Drama"}, "genres"),
        ({"genres": [3]}, "genres"),
        ({"genres": ["Western"]}, "genres"),
        ({"year_min": "2000"}, "year_min"),
        ({"year_max": 2000.5}, "year_max"),
        ({"year_min": 2005, "year_max": 2000}, "year_min"),
        ({"exclude": [None]}, "exclude"),
    ],
)
def test_bad_values_are_a_400_naming_the_field(client, fields, named):
    response = client.post("/v1/recommendations", json={"history": ["m04", "m08"], **fields})
    assert response.status_code == 400, response.json
    assert named in response.json["detail"]


def test_requests_drawn_from_the_openapi_document_get_documented_answers_with_behaviour(client):
    doc = client.get("/v1/openapi.json").json
    responses = doc["paths"]["/v1/recommendations"]["post"]["responses"]
    validator = Draft202012Validator(
        {**_closed(doc["components"]["schemas"]["Recommendations"]), "components": _closed(doc["components"])}
    )

    @settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(request_strategy(doc, "/v1/recommendations", "post"))
    def check(request) -> None:
        _, body = request
        body["history"] = [title(len(str(item)) % TITLES) for item in body["history"]]  # mostly known ids
        response = client.post("/v1/recommendations", json=body)
        assert str(response.status_code) in responses, (body, response.status_code, response.data[:300])
        if response.status_code == 200:
            validator.validate(response.json)

    check()
