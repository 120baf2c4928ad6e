"""The /v1 API against the real app (Flask's test client) over a real ScaNN index of synthetic vectors."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from prometheus_client import CONTENT_TYPE_LATEST
from test_recsvc_support import CROWDERS, DE_TITLES, DIM, Corpus, publish, settings_for, synthetic_corpus

from recsvc import create_app, kernels, ranking


@pytest.fixture(scope="module")
def app(index_root: Path):
    return create_app(settings_for(index_root), watch=False)


@pytest.fixture
def client(app) -> FlaskClient:
    return app.test_client()


def titles(corpus: Corpus) -> set[str]:
    return {item.title_id for item in corpus.items}


def assert_json_error(response, status: int) -> None:
    """Errors are JSON {"error", "detail"}, never HTML or a traceback."""
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "application/json", response.data[:300]
    assert set(response.json) == {"error", "detail"}
    assert response.json["error"] and response.json["detail"]
    assert b"<html" not in response.data.lower() and b"Traceback" not in response.data


# --- /similar ---------------------------------------------------------------------------------------


def test_similar_never_returns_the_poster_itself_and_collapses_variants(client: FlaskClient) -> None:
    for title_id in ("t000", "t003", "crowd-a"):  # titles with their own variants right beside them
        body = client.get(f"/v1/posters/{title_id}/similar?k=10").json
        ids = [r["id"] for r in body["results"]]
        assert title_id not in ids
        assert len(ids) == len(set(ids)) == 10
        assert all("@" not in i for i in ids)
        scores = [r["score"] for r in body["results"]]
        assert scores == sorted(scores, reverse=True)
        assert_scores_rounded(body["results"])


def assert_scores_rounded(results: list[dict]) -> None:
    """Scores are given to 6 decimals, not as the float32 similarity's 17 significant digits."""
    assert all(r["score"] == round(r["score"], 6) for r in results), [r["score"] for r in results]


def test_similar_fills_k_when_variants_crowd_the_neighbourhood(client: FlaskClient) -> None:
    """65 variant-and-original rows of five titles come first; k=10 still gets ten titles."""
    for k in (3, 10, 25):
        ids = [r["id"] for r in client.get(f"/v1/posters/crowd-q/similar?k={k}").json["results"]]
        assert len(ids) == len(set(ids)) == k
        assert set(ids[: min(k, 5)]) <= set(CROWDERS) and (k < 5 or set(ids[:5]) == set(CROWDERS))


def test_a_max_k_below_the_default_caps_the_default_k(index_root: Path) -> None:
    client = create_app(dataclasses.replace(settings_for(index_root), max_k=4), watch=False).test_client()
    assert len(client.get("/v1/posters/t001/similar").json["results"]) == 4
    assert len(client.post("/v1/recommendations", json={"history": ["t001"]}).json["results"]) == 4
    k = next(
        p
        for p in client.get("/v1/openapi.json").json["paths"]["/v1/posters/{title_id}/similar"]["get"]["parameters"]
        if p["name"] == "k"
    )
    assert k["schema"]["default"] == k["schema"]["maximum"] == 4
    example = client.get("/v1/openapi.json").json["paths"]["/v1/recommendations"]["post"]["requestBody"]
    answer = client.post("/v1/recommendations", json=example["content"]["application/json"]["example"])
    assert answer.status_code == 200 and len(answer.json["results"]) == 4, "the example keeps within max_k"


def test_the_documented_examples_name_served_titles_and_answer(client: FlaskClient, corpus: Corpus) -> None:
    paths = client.get("/v1/openapi.json").json["paths"]
    title_id = next(p for p in paths["/v1/posters/{title_id}/similar"]["get"]["parameters"] if p["name"] == "title_id")
    assert title_id["example"] in titles(corpus)
    assert client.get(f"/v1/posters/{title_id['example']}/similar").status_code == 200
    body = paths["/v1/recommendations"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert set(body["history"]) <= titles(corpus) and len(body["history"]) == 3
    answer = client.post("/v1/recommendations", json=body)
    assert answer.status_code == 200 and len(answer.json["results"]) == body["k"]


def test_the_document_has_no_examples_while_no_index_is_served(tmp_path: Path) -> None:
    client = create_app(settings_for(tmp_path / "no-index"), watch=False).test_client()
    document = client.get("/v1/openapi.json")
    assert document.status_code == 200
    assert all(
        "example" not in p for p in document.json["paths"]["/v1/posters/{title_id}/similar"]["get"]["parameters"]
    )


def test_a_posters_embedding_searches_back_to_the_poster(client: FlaskClient) -> None:
    got = client.get("/v1/posters/t001/embedding")
    assert got.status_code == 200 and got.json["id"] == "t001"
    vector = np.asarray(got.json["embedding"], np.float32)
    assert vector.ndim == 1 and abs(float(np.linalg.norm(vector)) - 1) < 1e-4
    found = client.post("/v1/search", json={"embedding": got.json["embedding"], "k": 1}).json["results"]
    assert found[0]["id"] == "t001" and found[0]["score"] > 0.999
    missing = client.get("/v1/posters/nope/embedding")
    assert missing.status_code == 404 and "no poster with id 'nope'" in missing.json["detail"]


def test_similar_returns_every_other_title_when_k_exceeds_the_catalogue(client: FlaskClient, corpus: Corpus) -> None:
    ids = [r["id"] for r in client.get("/v1/posters/crowd-q/similar?k=100").json["results"]]
    assert sorted(ids) == sorted(titles(corpus) - {"crowd-q"})


@pytest.mark.parametrize("script_root", ["", "/posterrec"])
@pytest.mark.parametrize("title_id", ["t000", "a b", "tt/0042", "Amélie?#", "x@DE", "Amélie", "ß", "１２"])
@pytest.mark.parametrize("region", [None, "DE", "zh Hant", "A&B"])
def test_image_urls_are_the_urls_flask_routes(app, script_root: str, title_id: str, region: str | None) -> None:
    """image_url formats the URL itself (url_for was a third of /similar's time); it must stay what url_for builds."""
    from flask import url_for

    from recsvc.served import image_url

    with app.test_request_context("/", environ_overrides={"SCRIPT_NAME": script_root}):
        expected = (
            url_for("v1.image", title_id=title_id, region=region) if region else url_for("v1.image", title_id=title_id)
        )
        assert image_url(title_id, region) == expected


def test_similar_with_region_swaps_image_url_to_the_variant(client: FlaskClient) -> None:
    results = client.get("/v1/posters/crowd-q/similar?k=10&region=de").json["results"]
    by_id = {r["id"]: r for r in results}
    for title_id in CROWDERS:  # every crowder has a DE variant
        assert by_id[title_id]["image_url"] == f"/v1/posters/{title_id}/image?region=DE"
        assert by_id[title_id]["region"] == "DE" and by_id[title_id]["localized_title"] == f"{title_id} (DE)"
    for result in results:
        if result["id"] not in CROWDERS and result["id"] not in DE_TITLES:  # no DE variant: the original
            assert result["image_url"] == f"/v1/posters/{result['id']}/image" and result["region"] is None


@pytest.mark.parametrize("k", ["0", "101", "-1", "1.5", "ten", "", "1e2", "true"])
def test_similar_refuses_k_outside_the_integers_1_to_max(client: FlaskClient, k: str) -> None:
    response = client.get(f"/v1/posters/t001/similar?k={k}")
    assert_json_error(response, 400)
    assert "k must be an integer in [1, 100]" in response.json["detail"]


def test_similar_unknown_id_is_404_a_malformed_region_400_and_a_region_without_variants_the_originals(
    client: FlaskClient,
) -> None:
    assert_json_error(client.get("/v1/posters/nope/similar"), 404)
    assert_json_error(client.get("/v1/posters/t001/similar?region=DEU"), 400)
    assert_json_error(client.get("/v1/posters/t001/similar?region=D1"), 400)
    for region in ("ZZ", ""):  # both match the documented pattern ^([A-Za-z]{2})?$
        response = client.get(f"/v1/posters/t001/similar?region={region}")
        assert response.status_code == 200 and all(result["region"] is None for result in response.json["results"])
    assert client.get("/v1/posters/t001/similar?region=ZZ").json == client.get("/v1/posters/t001/similar").json


# --- /recommendations --------------------------------------------------------------------------------


def test_recommendations_exclude_history_by_default(client: FlaskClient) -> None:
    history = ["crowd-a", "crowd-b"]
    excluded = [r["id"] for r in client.post("/v1/recommendations", json={"history": history, "k": 10}).json["results"]]
    assert len(excluded) == 10 and not set(history) & set(excluded)


def best_title_scores(index, query: np.ndarray) -> dict[str, float]:
    """Brute force: every title with an original poster, scored by its best row (original or variant) against ``query``."""
    scores = index.embeddings.astype(np.float64) @ query
    best: dict[str, float] = {}
    for row, item in enumerate(index.items):
        if index.poster_row(item.title_id) is not None:
            best[item.title_id] = max(best.get(item.title_id, -np.inf), scores[row])
    return best


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def reference_recommendations(
    index, history: list[str], k: int, aggregation: str, exclude_history: bool
) -> list[tuple[str, float]]:
    """What each aggregation means, computed from the vectors and the published similar lists alone."""
    vectors = np.array([index.embeddings[index.poster_row(title_id)] for title_id in history], np.float64)
    weights = ranking.RECENCY_DECAY ** np.arange(len(history) - 1, -1, -1)
    if aggregation == "fusion":
        per_query = [best_title_scores(index, vector) for vector in vectors]
        scored = {title: max(w * scores[title] for w, scores in zip(weights, per_query)) for title in per_query[0]}
    elif aggregation == "recent_neighbours":  # the recent query over the first 10 listed titles of the latest 5
        query = unit(weights @ vectors)
        listed = {
            index.title_ids[t]
            for title_id in history[-5:]
            for t in index.similar.titles[index.title_ids.index(title_id), :10]
            if t >= 0
        }
        candidates = listed if exclude_history else listed | set(history)
        scored = {title: float(index.embeddings[index.poster_row(title)] @ query) for title in candidates}
    else:
        scored = best_title_scores(
            index, unit((weights if aggregation == "recent" else np.ones(len(history))) @ vectors)
        )
    kept = ((title, score) for title, score in scored.items() if not (exclude_history and title in history))
    return sorted(kept, key=lambda pair: -pair[1])[:k]


@pytest.mark.parametrize("exclude_history", [True, False])
@pytest.mark.parametrize("aggregation", ranking.AGGREGATIONS)
def test_recommendations_rank_as_each_aggregation_defines(
    client: FlaskClient, app, aggregation: str, exclude_history: bool
) -> None:
    """Checked against a brute-force reference, not against the ranking code the service calls."""
    index = app.extensions["posterrec"].index
    history = ["t001", "t002", "crowd-q", "t005", "t008", "t009", "t012"]  # more than the 5 latest titles
    body = client.post(
        "/v1/recommendations",
        json={"history": history, "k": 7, "aggregation": aggregation, "exclude_history": exclude_history},
    ).json
    assert body["aggregation"] == aggregation
    expected = reference_recommendations(index, history, 7, aggregation, exclude_history)
    assert [r["id"] for r in body["results"]] == [title for title, _ in expected]
    assert [r["score"] for r in body["results"]] == pytest.approx([score for _, score in expected], abs=1e-5)
    assert_scores_rounded(body["results"])
    assert [r["title"] for r in body["results"]] == [
        index.items[index.poster_row(title)].title for title, _ in expected
    ]


@pytest.mark.parametrize("aggregation", ranking.AGGREGATIONS)
def test_every_aggregation_returns_k_titles_best_first_and_includes_the_history_on_request(
    client: FlaskClient, aggregation: str
) -> None:
    history = ["crowd-a", "crowd-b"]
    for exclude in (True, False):
        body = client.post(
            "/v1/recommendations",
            json={"history": history, "k": 10, "aggregation": aggregation, "exclude_history": exclude},
        ).json
        ids, scores = [r["id"] for r in body["results"]], [r["score"] for r in body["results"]]
        assert len(ids) == len(set(ids)) == 10
        assert scores == sorted(scores, reverse=True)
        assert (set(history) & set(ids)) == (set() if exclude else set(history))


def test_recent_aggregation_weighs_the_latest_title_above_the_earlier_one(client: FlaskClient) -> None:
    """``mean`` scores the two titles of the history alike; ``recent`` prefers the latest."""

    def scores(history: list[str], aggregation: str) -> dict[str, float]:
        body = client.post(
            "/v1/recommendations",
            json={"history": history, "k": 100, "exclude_history": False, "aggregation": aggregation},
        ).json
        return {r["id"]: r["score"] for r in body["results"]}

    for history in (["t011", "t012"], ["t012", "t011"]):
        mean = scores(history, "mean")
        assert abs(mean[history[1]] - mean[history[0]]) < 1e-4
        for aggregation in ("recent", "recent_neighbours", "fusion"):
            weighted = scores(history, aggregation)
            assert weighted[history[1]] > weighted[history[0]] + 0.01, aggregation


def test_recommendations_default_aggregation_is_the_apps(client: FlaskClient, app) -> None:
    body = client.post("/v1/recommendations", json={"history": ["t004"]}).json
    assert body["aggregation"] == app.config["POSTERREC_AGGREGATION"]
    assert len(body["results"]) == 10


def test_recommendations_take_a_history_of_up_to_1000_ids(client: FlaskClient) -> None:
    assert client.post("/v1/recommendations", json={"history": ["t001", "t002"] * 500}).status_code == 200


def test_recommendations_unknown_id_is_404(client: FlaskClient) -> None:
    response = client.post("/v1/recommendations", json={"history": ["t001", "missing-1"]})
    assert_json_error(response, 404)
    assert "missing-1" in response.json["detail"]


@pytest.mark.parametrize(
    "body, reason",
    [
        ({}, "history"),
        ({"history": []}, "history"),
        ({"history": "t001"}, "history"),
        ({"history": [1, 2]}, "history"),
        ({"history": ["t001"], "k": 0}, "k must"),
        ({"history": ["t001"], "k": "many"}, "k must"),
        ({"history": ["t001"], "k": 2.5}, "k must"),
        ({"history": ["t001"], "k": True}, "k must"),
        ({"history": ["t001"], "region": "ZZZ"}, "region must"),
        ({"history": ["t001"], "region": 7}, "region"),
        ({"history": ["t001"], "exclude_history": "yes"}, "exclude_history"),
        ({"history": ["t001"], "aggregation": "median"}, "aggregation"),
        ({"history": ["t001"], "aggregation": ["mean"]}, "aggregation"),
        ({"history": ["t001"], "histroy": ["t002"]}, "unknown field"),
        ({"history": ["t001"] * 1001}, "at most 1000"),
    ],
)
def test_recommendations_bad_fields_are_400_naming_the_field(client: FlaskClient, body: dict, reason: str) -> None:
    response = client.post("/v1/recommendations", json=body)
    assert_json_error(response, 400)
    assert reason in response.json["detail"]


@pytest.mark.parametrize(
    "data, detail",
    [
        (
            "{not json",
            "body is not well-formed JSON: Expecting property name enclosed in double quotes: line 1 column 2",
        ),
        ('{"history": ["t001"]} x', "body is not well-formed JSON: Extra data: line 1 column 23"),
        ('["t001"]', "body must be a JSON object, got an array"),
        ("null", "body must be a JSON object, got null"),
        ("", "body is empty: send a JSON object"),
        ("[" * 100_000, "body is not well-formed JSON: JSON nested too deeply to parse"),
    ],
)
def test_recommendations_malformed_json_is_400_saying_what_is_wrong(
    client: FlaskClient, data: str, detail: str
) -> None:
    response = client.post("/v1/recommendations", data=data, content_type="application/json")
    assert_json_error(response, 400)
    assert response.json["detail"].startswith(detail), response.json["detail"]


def test_recommendations_in_another_media_type_is_415_naming_it(client: FlaskClient) -> None:
    response = client.post("/v1/recommendations", data='{"history": ["t001"]}', content_type="text/plain")
    assert_json_error(response, 415)
    assert (
        response.json["detail"] == "send the body as JSON, Content-Type: application/json (Content-Type 'text/plain')"
    )
    assert "(no Content-Type)" in client.post("/v1/recommendations", data=b"{}").json["detail"]


# --- /search (JSON embedding; uploads are in test_recsvc_search.py) ----------------------------------


def test_search_by_embedding_finds_that_poster_first(client: FlaskClient, corpus: Corpus) -> None:
    row = next(i for i, item in enumerate(corpus.items) if item.key == "t007")
    body = client.post("/v1/search", json={"embedding": (corpus.embeddings[row] * 3).tolist(), "k": 5}).json
    assert body["results"][0]["id"] == "t007" and body["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert len({r["id"] for r in body["results"]}) == 5


def assert_region_shown(index, results: list[dict], region: str) -> None:
    """Results of titles with a ``region`` variant show it; the others show their original."""
    with_variant = {r["id"] for r in results if any(v.region == region for v in index.variants_of(r["id"]))}
    assert with_variant, "the check needs a title with a variant among the results"
    for r in results:
        if r["id"] in with_variant:
            assert r["region"] == region and r["image_url"].endswith(f"?region={region}") and r["localized_title"], r
        else:
            assert r["region"] is None and "?" not in r["image_url"] and r["localized_title"] is None, r


def test_recommendations_and_search_show_the_regions_variants(client: FlaskClient, app, corpus: Corpus) -> None:
    index = app.extensions["posterrec"].index
    recommended = client.post("/v1/recommendations", json={"history": ["t001", "t002"], "k": 20, "region": "DE"}).json
    assert_region_shown(index, recommended["results"], "DE")
    row = next(i for i, item in enumerate(corpus.items) if item.key == "t007")
    found = client.post("/v1/search", json={"embedding": corpus.embeddings[row].tolist(), "k": 5, "region": "DE"}).json
    assert_region_shown(index, found["results"], "DE")


@pytest.mark.parametrize("scale", [1e-300, 1e-30, 1e30, 1e300])
def test_search_by_embedding_of_any_finite_magnitude_searches_by_direction(
    client: FlaskClient, corpus: Corpus, scale: float
) -> None:
    """Magnitudes that overflow float32 or vanish in it once searched with NaN and answered invalid JSON."""
    row = next(i for i, item in enumerate(corpus.items) if item.key == "t011")
    response = client.post(
        "/v1/search", json={"embedding": (corpus.embeddings[row].astype(float) * scale).tolist(), "k": 3}
    )
    assert response.status_code == 200 and b"NaN" not in response.data
    assert [r["id"] for r in response.json["results"]][0] == "t011" and len(response.json["results"]) == 3


@pytest.mark.parametrize(
    "embedding, reason",
    [
        ([0.1] * (DIM - 1), f"list of {DIM} numbers, got {DIM - 1} values"),
        ("0.1,0.2", f"list of {DIM} numbers, got a string"),
        (None, f"embedding is missing: send a list of {DIM} numbers"),
        ([0.0] * DIM, "zeros"),
        ([0.1] * (DIM - 1) + ["x"], "finite"),
        ([0.1] * (DIM - 1) + [True], "finite"),
        ([10**400] * DIM, "finite"),
    ],
)
def test_search_refuses_bad_embeddings(client: FlaskClient, embedding, reason: str) -> None:
    response = client.post("/v1/search", json={"embedding": embedding})
    assert_json_error(response, 400)
    assert reason in response.json["detail"]


def test_search_refuses_fields_it_does_not_take(client: FlaskClient) -> None:
    response = client.post("/v1/search", json={"embedding": [0.1] * DIM, "history": ["t001"]})
    assert_json_error(response, 400)
    assert response.json["detail"] == "unknown field(s) 'history'; allowed: embedding, k, region"


def test_search_needs_json_or_multipart(client: FlaskClient) -> None:
    assert_json_error(client.post("/v1/search", data="hello", content_type="text/plain"), 415)
    assert_json_error(client.post("/v1/search", data={"k": "3"}, content_type="multipart/form-data"), 400)


def test_search_upload_that_is_not_an_image_is_415(client: FlaskClient) -> None:
    response = client.post("/v1/search", data={"image": (io.BytesIO(b"%PDF-1.4 not an image"), "doc.pdf")})
    assert_json_error(response, 415)
    assert "doc.pdf" in response.json["detail"]


def test_search_upload_of_an_empty_file_input_is_400_and_an_empty_file_415(client: FlaskClient) -> None:
    """A form's file input left empty sends a part with no file name and no bytes: a missing file, not a bad image."""
    unfilled = client.post("/v1/search", data={"image": (io.BytesIO(b""), "")})
    assert_json_error(unfilled, 400)
    assert "holds no file" in unfilled.json["detail"]
    assert_json_error(client.post("/v1/search", data={"image": (io.BytesIO(b""), "empty.png")}), 415)


def post_streamed(client: FlaskClient, path: str, body: bytes):
    """A JSON body sent as gunicorn passes on a chunked one: no Content-Length, the server terminating the stream."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


@pytest.mark.parametrize("path", ["/v1/recommendations", "/v1/search"])
def test_a_streamed_json_body_past_the_size_limit_is_413_not_cut_short(client: FlaskClient, app, path: str) -> None:
    """werkzeug stops reading a body of unknown length at the limit without a word: the cut prefix had been parsed
    (400 "not well-formed") and, when it was a JSON object before padding, answered (200)."""
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = json.dumps({"history": ["t001"], "embedding": [0.0] * 32}).encode()
    assert_json_error(post_streamed(client, path, body + b" " * limit), 413)
    assert_json_error(post_streamed(client, path, b'{"history": ["' + b"t" * limit + b'"]}'), 413)


def test_a_streamed_json_body_within_the_limit_is_read_whole(client: FlaskClient, app) -> None:
    body = json.dumps({"history": ["t001", "t002"], "k": 3}).encode()
    exactly_the_limit = body + b" " * (app.config["MAX_CONTENT_LENGTH"] - len(body))
    for sent in (body, exactly_the_limit):
        response = post_streamed(client, "/v1/recommendations", sent)
        assert response.status_code == 200, response.json
        assert len(response.json["results"]) == 3


def post_declared(client: FlaskClient, body: bytes, declared: int, terminated: bool):
    """A JSON body with its Content-Length header set to ``declared``, from a server that ends the stream (gunicorn) or not."""
    return client.post(
        "/v1/recommendations",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": str(declared), **({"wsgi.input_terminated": True} if terminated else {})},
    )


@pytest.mark.parametrize("terminated", [True, False])
def test_a_body_shorter_than_its_declared_length_is_400(client: FlaskClient, terminated: bool) -> None:
    """The client went away mid-body: what arrived is a well-formed object here, but not the request it declared
    (under gunicorn, werkzeug's own read had parsed it and answered 200)."""
    body = json.dumps({"history": ["t001"], "k": 3}).encode()
    assert_json_error(post_declared(client, body, len(body) + 10, terminated), 400)


@pytest.mark.parametrize("terminated", [True, False])
def test_a_body_is_read_to_its_declared_length_and_no_further(client: FlaskClient, terminated: bool) -> None:
    body = json.dumps({"history": ["t001", "t002"], "k": 3}).encode()
    response = post_declared(client, body + b'"trailing bytes past the declared length"', len(body), terminated)
    assert response.status_code == 200, response.json
    assert len(response.json["results"]) == 3


def test_a_json_body_declared_past_the_size_limit_is_413(client: FlaskClient, app) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert_json_error(post_declared(client, b'{"history": ["t001"]}' + b" " * limit, limit + 1, terminated=True), 413)


def test_search_upload_too_large_is_413(client: FlaskClient, app) -> None:
    too_big = app.config["MAX_CONTENT_LENGTH"] + 1
    response = client.post("/v1/search", data={"image": (io.BytesIO(b"\xff" * too_big), "huge.jpg")})
    assert_json_error(response, 413)
    limit = f"{app.config['MAX_CONTENT_LENGTH']:,}"
    assert response.json["detail"] == f"the request body is larger than the {limit} bytes accepted"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/posters/t001/similar?k=3&k=5",
        "/v1/posters?genre=Drama&genre=Sport",
        "/v1/posters/t001/image?region=DE&region=JP",
    ],
)
def test_a_parameter_given_twice_is_400_naming_it(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert_json_error(response, 400)
    assert response.json["detail"].endswith("is given more than once; give it once")
    two = client.post("/v1/search", data={"image": [(io.BytesIO(b"x"), "a.jpg"), (io.BytesIO(b"y"), "b.jpg")]})
    assert_json_error(two, 400)
    assert two.json["detail"] == "multipart upload holds 2 files named 'image'; send one"
    upload = client.post("/v1/search", data={"image": (io.BytesIO(b"x"), "x.jpg"), "k": ["3", "5"]})
    assert_json_error(upload, 400)
    assert upload.json["detail"] == "parameter 'k' is given more than once; give it once"


def test_a_wrong_path_or_method_is_named_with_what_would_do(client: FlaskClient) -> None:
    missing = client.get("/v1/posters/t001/similar/")
    assert_json_error(missing, 404)
    assert (
        missing.json["detail"] == "no endpoint at '/v1/posters/t001/similar/'; /v1/openapi.json lists the API's paths"
    )
    not_the_apis = client.get("/static/browse/nope.css")
    assert not_the_apis.status_code == 404 and "openapi" not in not_the_apis.json["detail"]
    api_root = client.get("/v1")
    assert_json_error(api_root, 404)
    assert api_root.json["detail"] == "no endpoint at '/v1'; /v1/openapi.json lists the API's paths"
    assert "openapi" not in client.get("/v1x").json["detail"]
    wrong = client.delete("/v1/recommendations")
    assert_json_error(wrong, 405)
    assert wrong.json["detail"] == "'DELETE' is not allowed here; allowed: OPTIONS, POST"


def test_errors_repeat_a_clients_values_shortened(client: FlaskClient) -> None:
    """An id of 300,000 characters, or a thousand unknown ids, do not come back whole."""
    long_id = "x" * 300_000
    for response in (
        client.get(f"/v1/posters/{long_id}/similar"),
        client.post("/v1/recommendations", json={"history": ["t001", long_id]}),
        client.post("/v1/recommendations", json={"history": ["t001"], "k": [1] * 100_000}),
    ):
        assert 400 <= response.status_code < 500 and len(response.data) < 1_000, response.data[:300]
    unknown = client.post("/v1/recommendations", json={"history": [f"missing-{i}" for i in range(1000)]})
    assert_json_error(unknown, 404)
    assert unknown.json["detail"].endswith("'missing-9' and 990 more")


# --- metadata, variants, images -------------------------------------------------------------------


def test_poster_metadata(client: FlaskClient, corpus: Corpus) -> None:
    body = client.get("/v1/posters/t000").json
    assert body["id"] == "t000" and body["title"] == "Title t000" and body["genres"] == ["Drama"]
    assert body["year"] == next(item.year for item in corpus.items if item.key == "t000") is not None
    assert body["variant_regions"] == ["DE", "FR"] and body["image_url"] == "/v1/posters/t000/image"
    assert client.get("/v1/posters/t020").json["variant_regions"] == []
    assert_json_error(client.get("/v1/posters/nope"), 404)


def test_a_variant_key_is_not_a_poster_id(client: FlaskClient) -> None:
    for url in (
        "/v1/posters/t000@DE",
        "/v1/posters/t000@DE/similar",
        "/v1/posters/t000@DE/variants",
        "/v1/posters/t000@DE/image",
    ):
        assert_json_error(client.get(url), 404)
    assert_json_error(client.post("/v1/recommendations", json={"history": ["t000@DE"]}), 404)


def test_variants_by_region(client: FlaskClient) -> None:
    every = client.get("/v1/posters/t000/variants").json["variants"]
    assert sorted(v["region"] for v in every) == ["DE", "FR"]
    de = client.get("/v1/posters/t000/variants?region=DE").json["variants"]
    assert de == [
        {"region": "DE", "language": "de", "title": "t000 (DE)", "image_url": "/v1/posters/t000/image?region=DE"}
    ]
    assert client.get("/v1/posters/t000/variants?region=JP").json["variants"] == []
    assert_json_error(client.get("/v1/posters/t000/variants?region=Z1"), 400)
    assert_json_error(client.get("/v1/posters/nope/variants?region=DE"), 404)


def _path_of(corpus: Corpus, key: str) -> Path:
    return Path(next(item.image_path for item in corpus.items if item.key == key))


def test_image_bytes_variant_and_fallback(client: FlaskClient, corpus: Corpus) -> None:
    original = client.get("/v1/posters/t001/image")
    assert original.data == _path_of(corpus, "t001").read_bytes() and original.mimetype == "image/jpeg"
    assert original.headers["X-PosterRec-Image"] == "original" and "X-PosterRec-Fallback" not in original.headers
    variant = client.get("/v1/posters/t001/image?region=DE")
    assert variant.data == _path_of(corpus, "t001@DE").read_bytes() != original.data
    assert variant.headers["X-PosterRec-Image"] == "variant:DE"
    fallback = client.get("/v1/posters/t001/image?region=JP")
    assert fallback.data == original.data and "no JP variant" in fallback.headers["X-PosterRec-Fallback"]
    assert_json_error(client.get("/v1/posters/nope/image"), 404)
    assert_json_error(client.get("/v1/posters/t001/image?region=XXX"), 400)
    unknown = client.get("/v1/posters/t001/image?region=XX")
    assert unknown.data == original.data and "no XX variant" in unknown.headers["X-PosterRec-Fallback"]


def test_image_caching_etag_and_304(client: FlaskClient) -> None:
    first = client.get("/v1/posters/t002/image?region=DE")
    assert first.headers["ETag"] and "max-age=" in first.headers["Cache-Control"]
    again = client.get("/v1/posters/t002/image?region=DE", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    other = client.get("/v1/posters/t002/image", headers={"If-None-Match": first.headers["ETag"]})
    assert other.status_code == 200, "the original and the variant must not share an ETag"
    assert "max-age=" in other.headers["Cache-Control"] and "no-cache" not in other.headers["Cache-Control"]


def test_a_fallback_image_is_revalidated_at_each_look(client: FlaskClient) -> None:
    """Until the region's variant is published: afterwards the same URL must show the variant, not a cached original."""
    fallback = client.get("/v1/posters/t002/image?region=JP")
    assert fallback.headers["X-PosterRec-Fallback"]
    assert "no-cache" in fallback.headers["Cache-Control"] and "max-age" not in fallback.headers["Cache-Control"]
    assert "Expires" not in fallback.headers, "an HTTP/1.0 cache would keep the original until the day-long Expires"
    assert (
        client.get("/v1/posters/t002/image?region=JP", headers={"If-None-Match": fallback.headers["ETag"]}).status_code
        == 304
    )


def test_an_image_file_without_extension_is_typed_by_its_content_and_a_missing_one_is_503(tmp_path: Path) -> None:
    corpus = synthetic_corpus(tmp_path / "images")
    row = next(row for row, item in enumerate(corpus.items) if item.key == "t001")
    bare = Path(corpus.items[row].image_path).with_suffix("")
    shutil.copy(corpus.items[row].image_path, bare)
    items = [
        *corpus.items[:row],
        dataclasses.replace(corpus.items[row], image_path=str(bare)),
        *corpus.items[row + 1 :],
    ]
    publish(tmp_path / "index", dataclasses.replace(corpus, items=items))
    client = create_app(settings_for(tmp_path / "index"), watch=False).test_client()
    response = client.get("/v1/posters/t001/image")
    assert response.status_code == 200 and response.mimetype == "image/jpeg" and response.data == bare.read_bytes()
    bare.unlink()
    assert_json_error(client.get("/v1/posters/t001/image"), 503)


# --- health, readiness, metrics, OpenAPI, unknown routes ----------------------------------------


def test_healthz_and_readyz(client: FlaskClient, corpus: Corpus) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz").json
    assert ready["status"] == "ready" and ready["items"] == len(corpus.items)


def test_readyz_is_503_before_any_index_and_ready_after_publishing(tmp_path: Path, corpus: Corpus) -> None:
    app = create_app(settings_for(tmp_path / "index"), watch=False)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json["status"] == "not_ready"
    not_ready = client.get("/v1/posters/t001/similar")
    assert_json_error(not_ready, 503)
    assert "Retry-After" not in not_ready.headers  # no watcher: only a restart would load a version
    version = publish(tmp_path / "index", corpus)
    assert app.extensions["posterrec"].refresh()
    assert client.get("/readyz").json["version"] == version


def test_a_watching_service_without_an_index_asks_clients_to_retry_after_one_poll(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path / "index", poll_seconds=2.5), watch=True)
    try:
        response = app.test_client().get("/v1/posters/t001/similar")
        assert response.status_code == 503 and response.json["error"] == "index_not_ready"
        assert response.headers["Retry-After"] == "3"
    finally:
        app.extensions["posterrec"].stop()


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample in exposition text (0 when absent)."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            return float(match.group(2))
    return 0.0


def test_metrics_count_requests_and_latency_per_endpoint_and_show_the_index(index_root: Path, corpus: Corpus) -> None:
    client = create_app(settings_for(index_root), watch=False).test_client()  # the gauges are process-wide: load last
    rule = "/v1/posters/<title_id>/similar"
    before = client.get("/metrics").get_data(as_text=True)
    for _ in range(3):
        client.get("/v1/posters/t001/similar?k=3")
    client.get("/v1/posters/t001/similar?k=0")
    scraped = client.get("/metrics")
    assert scraped.headers["Content-Type"] == CONTENT_TYPE_LATEST, "Prometheus' own, its charset once"
    after = scraped.get_data(as_text=True)
    ok = dict(name="posterrec_requests_total", endpoint=rule, method="GET", status="200")
    assert _sample(after, **ok) - _sample(before, **ok) == 3
    bad = dict(ok, status="400")
    assert _sample(after, **bad) - _sample(before, **bad) == 1
    count = dict(name="posterrec_request_seconds_count", endpoint=rule)
    assert _sample(after, **count) - _sample(before, **count) == 4
    assert _sample(after, "posterrec_request_seconds_bucket", endpoint=rule, le="+Inf") >= 4
    assert _sample(after, "posterrec_index_items") == len(corpus.items)
    version = client.get("/readyz").json["version"]
    assert f'posterrec_index_version_info{{version="{version}"}} 1.0' in after


def test_made_up_methods_share_one_series(client: FlaskClient) -> None:
    """Each new label set is a series in every worker's metrics files: what a client may invent must not make one."""
    for method in ("BLAH1", "BLAH2", "X" * 200):
        assert_json_error(client.open("/v1/posters/t001", method=method), 405)
    text = client.get("/metrics").get_data(as_text=True)
    assert "BLAH" not in text and "XXXX" not in text
    assert _sample(text, "posterrec_requests_total", endpoint="unmatched", method="OTHER", status="405") >= 3


def test_openapi_document_describes_every_endpoint_of_the_api(client: FlaskClient, app) -> None:
    doc = client.get("/v1/openapi.json").json
    documented = {path.replace("{title_id}", "<title_id>") for path in doc["paths"]}
    api_rules = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("v1.") and rule.endpoint != "v1.openapi"
    }
    assert api_rules and api_rules <= documented


def _closed(schema):
    """``schema`` with every object schema that lists properties closed to others: a field the document does not
    describe fails validation, as one it describes wrongly does."""
    if isinstance(schema, list):
        return [_closed(part) for part in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if "properties" in schema and schema.get("type") == "object":
        closed.setdefault("additionalProperties", False)
    return closed


RESPONSES_TO_CHECK = [
    ("get", "/v1/posters/{title_id}/similar", "/v1/posters/t001/similar?k=5&region=DE", None),
    ("post", "/v1/recommendations", "/v1/recommendations", {"history": ["t001", "t002"], "k": 4, "region": "FR"}),
    ("post", "/v1/search", "/v1/search", {"embedding": [1.0] + [0.0] * (DIM - 1), "k": 3}),
    ("get", "/v1/posters/{title_id}", "/v1/posters/t000", None),
    ("get", "/v1/posters/{title_id}/variants", "/v1/posters/t000/variants", None),
    ("get", "/v1/posters/{title_id}/embedding", "/v1/posters/t000/embedding", None),
    ("get", "/v1/posters", "/v1/posters?q=title&per_page=3", None),
    ("get", "/v1/genres", "/v1/genres", None),
    ("get", "/v1/posters/{title_id}", "/v1/posters/nope", None),
    ("post", "/v1/recommendations", "/v1/recommendations", {"history": ["t001"], "k": "4"}),
]


@pytest.mark.parametrize("method, documented, url, body", RESPONSES_TO_CHECK)
def test_responses_are_what_the_openapi_document_says(
    client: FlaskClient, method: str, documented: str, url: str, body
) -> None:
    from jsonschema import Draft202012Validator

    doc = client.get("/v1/openapi.json").json
    response = client.open(url, method=method.upper(), json=body)
    described = doc["paths"][documented][method]["responses"]
    assert str(response.status_code) in described, f"{url} answered {response.status_code}, not documented"
    schema = described[str(response.status_code)]["content"]["application/json"]["schema"]
    Draft202012Validator({**_closed(schema), "components": _closed(doc["components"])}).validate(response.json)


def test_the_image_routes_conditional_and_range_answers_are_documented(client: FlaskClient) -> None:
    doc = client.get("/v1/openapi.json").json
    described = doc["paths"]["/v1/posters/{title_id}/image"]["get"]["responses"]
    url = "/v1/posters/t001/image"
    etag = client.get(url).headers["ETag"]
    answers = {
        "range": client.get(url, headers={"Range": "bytes=0-9"}),
        "etag": client.get(url, headers={"If-None-Match": etag}),
        "range past the end": client.get(url, headers={"Range": "bytes=99999999-"}),
    }
    assert [answer.status_code for answer in answers.values()] == [206, 304, 416]
    for name, answer in answers.items():
        assert str(answer.status_code) in described, f"{name}: {answer.status_code} is not documented"
    whole = client.get(url).data
    for ignored in ("bytes=0-1,5-6", "bytes=abc", "items=0-5"):
        for route in (url, "/download/t001"):
            response = client.get(route, headers={"Range": ignored})
            assert response.status_code == 200 and response.data == whole, (route, ignored)


def test_the_documented_defaults_are_the_ones_applied(client: FlaskClient) -> None:
    request_schema = client.get("/v1/openapi.json").json["components"]["schemas"]["RecommendationRequest"]["properties"]
    assert request_schema["exclude_history"]["default"] is True
    watched = {
        r["id"] for r in client.post("/v1/recommendations", json={"history": ["t001", "t002"], "k": 50}).json["results"]
    }
    assert not watched & {"t001", "t002"}


def test_unknown_route_and_wrong_method_are_json(client: FlaskClient) -> None:
    assert_json_error(client.get("/v2/anything"), 404)
    assert_json_error(client.get("/v1/poster/t001"), 404)
    assert_json_error(client.get("/v1/posters/%2Ft001"), 404)  # an id with a slash is not redirected elsewhere
    assert_json_error(client.post("/healthz"), 405)
    assert_json_error(client.get("/v1/recommendations"), 405)
    assert_json_error(client.delete("/v1/posters/t001"), 405)


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("POST", "/healthz", {"GET", "HEAD", "OPTIONS"}),
        ("DELETE", "/v1/posters/t001", {"GET", "HEAD", "OPTIONS"}),
        ("GET", "/v1/search", {"POST", "OPTIONS"}),
    ],
)
def test_wrong_method_says_which_are_allowed(client: FlaskClient, method: str, path: str, allowed: set[str]) -> None:
    response = client.open(path, method=method)
    assert_json_error(response, 405)
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed
    assert response.headers.getlist("Content-Type") == ["application/json"]


def test_batched_search_widens_only_the_crowded_queries_and_agrees_with_single_ones(app) -> None:
    index = app.extensions["posterrec"].index
    queries = index.embeddings[[index.row_of_key[t] for t in ("crowd-q", "t001", "crowd-a")]]
    crowd_q = index.title_ids.index("crowd-q")
    batched = ranking.nearest_titles_batched(index, queries, 10, exclude={crowd_q})
    assert [len(ranked.titles) for ranked in batched] == [10, 10, 10]
    single = [ranking.nearest_titles(index, q, 10, exclude={crowd_q}) for q in queries]
    assert [ranked.titles for ranked in batched] == [ranked.titles for ranked in single]
    assert [s for ranked in batched for s in ranked.scores] == pytest.approx(
        [s for ranked in single for s in ranked.scores], abs=1e-5
    )
    assert crowd_q not in {title for ranked in batched for title in ranked.titles}


def test_the_warm_up_compiles_the_kernels_with_the_types_requests_pass(client: FlaskClient) -> None:
    """Numba compiles again for each new argument type (a read-only array is one): a request after the
    warm-up must find its kernels compiled, or it waits seconds for them."""
    kernels.warm_up()
    every = (kernels.unit_weighted_sum, kernels.recommend_listed, kernels.best_listed)
    compiled = {kernel: len(kernel.signatures) for kernel in every}
    bodies = [{"history": ["t001", "t002"], "aggregation": aggregation} for aggregation in ranking.AGGREGATIONS]
    bodies += [{"history": ["t001", "t002"], "weights": [1, 0.5]}, {"history": ["t001"], "negative": ["t003"]}]
    bodies += [{"history": ["t001", "t002"], "exclude": ["t005"]}]  # ranks its listed titles in best_listed
    for body in bodies:
        assert client.post("/v1/recommendations", json=body).status_code == 200, body
    assert {kernel: len(kernel.signatures) for kernel in compiled} == compiled


def test_cors_lets_pages_of_the_configured_origin_call_the_api_only(index_root: Path) -> None:
    settings = dataclasses.replace(settings_for(index_root), cors_allow_origin="https://app.example")
    client = create_app(settings, watch=False).test_client()
    preflight = client.options(
        "/v1/recommendations",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert "Retry-After" in preflight.headers["Access-Control-Expose-Headers"]
    for answer in (client.post("/v1/recommendations", json={"history": ["t001"]}), client.get("/v1/posters/t001")):
        assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    for outside in ("/metrics", "/healthz", "/"):
        assert "Access-Control-Allow-Origin" not in client.get(outside).headers, outside
    default = create_app(settings_for(index_root), watch=False).test_client().get("/v1/posters/t001")
    assert "Access-Control-Allow-Origin" not in default.headers
