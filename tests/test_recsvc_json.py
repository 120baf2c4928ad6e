"""The orjson JSON provider reads and writes what Flask's standard-library provider does, and falls back where orjson cannot."""

from __future__ import annotations

import json

import pytest
from flask import Flask, jsonify

from recsvc.json_provider import OrjsonProvider

SAMPLES = [
    {"id": "tt0001", "title": "Amélie", "score": 0.987654, "region": None, "localized_title": "Die fabelhafte Welt"},
    {"results": [{"id": "a/b c", "score": -1e-7}, {"id": "東京物語", "score": 1.0}], "page": 3},
    ["日本", 0, 1.5, True, None, {"nested": {"empty": []}}],
    {"big": 2**70, "text": "integers beyond 64 bits go to the standard library"},
]


def _app(debug: bool = False) -> Flask:
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.debug = debug
    return app


@pytest.mark.parametrize("payload", SAMPLES)
def test_responses_parse_to_what_was_sent(payload) -> None:
    with _app().app_context():
        response = jsonify(payload)
    assert response.mimetype == "application/json"
    assert json.loads(response.get_data()) == payload
    assert response.get_data().endswith(b"\n")


def test_fields_keep_the_order_written() -> None:
    with _app().app_context():
        body = jsonify(id="x", title="t", score=1.0).get_data(as_text=True)
    assert list(json.loads(body)) == ["id", "title", "score"]


def test_debug_responses_are_indented_and_others_compact() -> None:
    payload = {"a": [1, 2], "big": 2**70}
    for debug, indented in ((True, True), (False, False)):
        with _app(debug).app_context():
            small, big = jsonify(a=[1, 2]).get_data(as_text=True), jsonify(payload).get_data(as_text=True)
        assert ("\n  " in small) is indented and ("\n  " in big) is indented
        assert json.loads(big) == payload


def test_dumps_with_options_is_the_standard_librarys() -> None:
    provider = OrjsonProvider(_app())
    assert provider.dumps({"b": 1, "a": [1]}, indent=3) == json.dumps({"b": 1, "a": [1]}, indent=3)
    assert json.loads(provider.dumps({"big": 2**70})) == {"big": 2**70}


@pytest.mark.parametrize(
    "text", [json.dumps(sample) for sample in SAMPLES[:3]] + ['{"embedding": [NaN, Infinity, -Infinity]}', "[1, NaN]"]
)
def test_request_bodies_parse_as_the_standard_library_parses_them(text: str) -> None:
    """orjson where it can; the NaN and Infinity literals it refuses go to the standard library (compared as text: NaN != NaN)."""
    parsed = OrjsonProvider(_app()).loads(text.encode())
    assert json.dumps(parsed) == json.dumps(json.loads(text))


def test_malformed_bodies_are_refused_by_both_parsers() -> None:
    with pytest.raises(ValueError):
        OrjsonProvider(_app()).loads(b'{"history": [')


@pytest.mark.parametrize("body", ["[" * 100_000, '{"a":' * 100_000, "[" * 2_000 + "]" * 2_000])
def test_json_nested_past_both_parsers_is_a_parse_error_not_a_recursion_error(body: str) -> None:
    with pytest.raises(ValueError):
        _app().json.loads(body)
