"""The API shortcut answers similar posters and recommendations exactly as the Flask views do, and declines
everything else."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_recsvc_support import DE_TITLES, settings_for

from recsvc import create_app
from recsvc.metrics import REQUESTS
from recsvc.shortcut import ApiShortcut

ANSWERED = [
    "/v1/posters/{id}/similar",
    "/v1/posters/{id}/similar?k=3",
    "/v1/posters/{id}/similar?k=+05&region=de",
    "/v1/posters/{id}/similar?region=DE&k=%32",
    "/v1/posters/{id}/similar?region=&unknown=1",
    "/v1/posters/{id}/similar?region=JP",  # a known region without variants: the originals
]
ERRORS = [
    "/v1/posters/no-such-title/similar",  # 404
    "/v1/posters/{id}/similar?k=0",  # 400
    "/v1/posters/{id}/similar?k=abc",
    "/v1/posters/{id}/similar?k=",
    "/v1/posters/{id}/similar?region=ZZZ",
    "/v1/posters/{id}/similar?k=3&k=5",  # given twice: 400
    "/v1/posters/{id}/similar?%25FF=1&%FF=2",  # the same name to werkzeug, invalid UTF-8 escaped back
    "/v1/posters/{id}/similar/",  # not the route: 404
    "/v1/posters//similar",
    "/v1/posters/{id}/x/similar",
    "/v1/posters/similar",
]
OTHER_ROUTES = ["/v1/posters/{id}", "/healthz", "/v1/posters/{id}/image"]

RECOMMENDATIONS = "/v1/recommendations"
ANSWERED_BODIES = [
    {"history": ["t001"]},
    {"history": ["t001", "t004", "t020"], "k": 3, "region": "de"},
    {"history": ["t001", "t002"], "exclude_history": False, "aggregation": "fusion"},
    {"history": ["t001", "t002"], "weights": [1, 3], "negative": ["t030"], "exclude": ["t005"]},
    {"history": ["t001"], "region": "JP", "k": 1},
]
BAD_BODIES = [
    ("{not json", "application/json"),
    ('["t001"]', "application/json"),
    ("", "application/json"),
    ('{"history": ["t001", "missing"]}', "application/json"),  # 404
    ('{"history": ["t001"], "k": 0}', "application/json"),
    ('{"history": ["t001"], "histroy": ["t002"]}', "application/json"),
    ('{"history": ["t001"], "signal": "behaviour"}', "application/json"),  # no behaviour model in this index
    ('{"history": ["t001"]}', "text/plain"),
    ('{"history": ["t001"]}', ""),
    ('{"history": ["t001"]}', "application/json\xa0"),  # werkzeug strips spaces and tabs only
]


@pytest.fixture(scope="module")
def app(index_root: Path):
    return create_app(settings_for(index_root), watch=False)


@pytest.fixture(scope="module")
def shortcut(app) -> ApiShortcut:
    return ApiShortcut(app)


def shortcut_answer(shortcut: ApiShortcut, url: str, method: str = "GET", content_type: str = "", body: bytes = b""):
    path, _, query = url.partition("?")
    return shortcut(method, path, query, content_type, body)


def assert_same_response(expected, answer) -> None:
    """``answer`` (the shortcut's) has the status, headers and bytes of the Flask response ``expected``."""
    assert expected.status_code == 200, expected.data
    status, headers, body = answer
    assert status == 200 and body == expected.data
    assert dict(headers) == {name: value for name, value in expected.headers if name != "Content-Length"}


@pytest.mark.parametrize("url", ANSWERED)
def test_a_request_the_view_answers_200_gets_the_views_status_headers_and_bytes(app, shortcut, url) -> None:
    url = url.format(id=DE_TITLES[0])
    assert_same_response(app.test_client().get(url), shortcut_answer(shortcut, url))


@pytest.mark.parametrize("url", ERRORS)
def test_a_request_the_view_refuses_is_declined_for_the_app_to_answer(app, shortcut, url) -> None:
    url = url.format(id=DE_TITLES[0])
    assert 400 <= app.test_client().get(url).status_code < 500
    assert shortcut_answer(shortcut, url) is None


@pytest.mark.parametrize("url", OTHER_ROUTES)
def test_other_routes_are_declined(shortcut, url) -> None:
    assert shortcut_answer(shortcut, url.format(id=DE_TITLES[0])) is None


def test_other_methods_are_declined(shortcut) -> None:
    for method in ("HEAD", "POST", "DELETE"):
        assert shortcut_answer(shortcut, f"/v1/posters/{DE_TITLES[0]}/similar", method) is None
    body = json.dumps(ANSWERED_BODIES[0]).encode()
    for method in ("GET", "PUT"):
        assert shortcut_answer(shortcut, RECOMMENDATIONS, method, "application/json", body) is None


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON; charset=utf-8"])
@pytest.mark.parametrize("request_body", ANSWERED_BODIES)
def test_a_recommendation_the_view_answers_200_gets_the_views_status_headers_and_bytes(
    app, shortcut, request_body: dict, content_type: str
) -> None:
    data = json.dumps(request_body).encode()
    expected = app.test_client().post(RECOMMENDATIONS, data=data, content_type=content_type)
    assert_same_response(expected, shortcut_answer(shortcut, RECOMMENDATIONS, "POST", content_type, data))


@pytest.mark.parametrize("data, content_type", BAD_BODIES)
def test_a_recommendation_the_view_refuses_is_declined_for_the_app_to_answer(app, shortcut, data, content_type) -> None:
    assert 400 <= app.test_client().post(RECOMMENDATIONS, data=data, content_type=content_type).status_code < 500
    assert shortcut_answer(shortcut, RECOMMENDATIONS, "POST", content_type, data.encode()) is None


def test_a_json_media_type_other_than_application_json_is_left_to_the_app(app, shortcut) -> None:
    data = json.dumps(ANSWERED_BODIES[0]).encode()
    assert (
        app.test_client().post(RECOMMENDATIONS, data=data, content_type="application/x.posterrec+json").status_code
        == 200
    )
    assert shortcut_answer(shortcut, RECOMMENDATIONS, "POST", "application/x.posterrec+json", data) is None


def test_an_answer_is_counted_under_the_views_rule(shortcut) -> None:
    series = REQUESTS.labels("/v1/posters/<title_id>/similar", "GET", "200")
    before = series._value.get()
    assert shortcut_answer(shortcut, f"/v1/posters/{DE_TITLES[1]}/similar?k=2") is not None
    assert series._value.get() == before + 1
    series = REQUESTS.labels(RECOMMENDATIONS, "POST", "200")
    before = series._value.get()
    data = json.dumps(ANSWERED_BODIES[0]).encode()
    assert shortcut_answer(shortcut, RECOMMENDATIONS, "POST", "application/json", data) is not None
    assert series._value.get() == before + 1


def test_without_an_index_every_request_is_declined(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path / "empty"), watch=False)
    assert shortcut_answer(ApiShortcut(app), f"/v1/posters/{DE_TITLES[0]}/similar") is None
    assert app.test_client().get(f"/v1/posters/{DE_TITLES[0]}/similar").status_code == 503


def test_the_apps_configuration_is_read_on_each_request(index_root: Path) -> None:
    app = create_app(settings_for(index_root), watch=False)
    shortcut = ApiShortcut(app)
    app.config["POSTERREC_AGGREGATION"] = "mean"
    data = json.dumps(ANSWERED_BODIES[0]).encode()
    assert (
        json.loads(shortcut_answer(shortcut, RECOMMENDATIONS, "POST", "application/json", data)[2])["aggregation"]
        == "mean"
    )


def test_an_app_with_request_hooks_the_shortcut_would_skip_is_refused(index_root: Path) -> None:
    app = create_app(settings_for(index_root), watch=False)
    app.before_request(lambda: None)
    with pytest.raises(RuntimeError, match="request hooks"):
        ApiShortcut(app)


def test_an_answer_carries_the_cors_headers_the_view_would(index_root: Path) -> None:
    settings = dataclasses.replace(settings_for(index_root), cors_allow_origin="https://app.example")
    app = create_app(settings, watch=False)
    url = "/v1/posters/t001/similar?k=3"
    expected = app.test_client().get(url)
    assert expected.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert_same_response(expected, shortcut_answer(ApiShortcut(app), url))
