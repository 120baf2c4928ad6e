"""A bounded fuzz run from the OpenAPI document: requests drawn from each operation's documented parameters and
JSON body (hypothesis-jsonschema) must get no 5xx, only documented statuses, and bodies their schema describes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator
from test_recsvc_api import _closed
from test_recsvc_support import settings_for

from recsvc import create_app

EXAMPLES_PER_OPERATION = 60


@pytest.fixture(scope="module")
def fuzzed(index_root: Path):
    client = create_app(settings_for(index_root), watch=False).test_client()
    return client, client.get("/v1/openapi.json").json


OPERATIONS = [
    ("/v1/posters/{title_id}/similar", "get"),
    ("/v1/recommendations", "post"),
    ("/v1/search", "post"),
    ("/v1/posters", "get"),
    ("/v1/genres", "get"),
    ("/v1/posters/{title_id}", "get"),
    ("/v1/posters/{title_id}/variants", "get"),
    ("/v1/posters/{title_id}/image", "get"),
    ("/v1/posters/{title_id}/embedding", "get"),
]
KNOWN_IDS = st.sampled_from(["t001", "t000", "crowd-q", "crowd-a", "nope"])


def body_strategy(schema: dict, doc: dict):
    """A JSON object as ``schema`` (or the component it refers to) describes it: its required properties and any of
    the others, each drawn from its own schema (hypothesis-jsonschema's own objects need an older hypothesis)."""
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    properties = {name: from_schema(prop) for name, prop in schema["properties"].items()}
    required = set(schema.get("required", ()))
    return st.fixed_dictionaries(
        {name: properties[name] for name in required},
        optional={name: strategy for name, strategy in properties.items() if name not in required},
    )


def request_strategy(doc: dict, path: str, method: str):
    """URL and JSON body of one request drawn from what the document says of ``method path``."""
    operation = doc["paths"][path][method]
    parameters = operation.get("parameters", [])
    path_values = {p["name"]: KNOWN_IDS | st.text(min_size=1, max_size=12) for p in parameters if p["in"] == "path"}
    query = {p["name"]: st.none() | from_schema(p["schema"]) for p in parameters if p["in"] == "query"}
    content = operation.get("requestBody", {}).get("content", {})
    body = body_strategy(content["application/json"]["schema"], doc) if "application/json" in content else st.none()

    @st.composite
    def draw(draw_one):
        url = path
        for name, strategy in path_values.items():
            url = url.replace("{" + name + "}", quote(draw_one(strategy), safe=""))
        values = {name: draw_one(strategy) for name, strategy in query.items()}
        given_values = {
            name: str(value).lower() if isinstance(value, bool) else value
            for name, value in values.items()
            if value is not None
        }
        return (f"{url}?{urlencode(given_values)}" if given_values else url), draw_one(body)

    return draw()


@pytest.mark.parametrize("path, method", OPERATIONS)
def test_requests_drawn_from_the_openapi_document_get_documented_answers(fuzzed, path: str, method: str) -> None:
    client, doc = fuzzed
    responses = doc["paths"][path][method]["responses"]

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
    )
    @given(request_strategy(doc, path, method))
    def check(request) -> None:
        url, body = request
        response = (
            client.open(url, method=method.upper(), json=body)
            if body is not None
            else client.open(url, method=method.upper())
        )
        assert response.status_code < 500, (
            f"{method.upper()} {url} {body!r}: {response.status_code} {response.data[:300]!r}"
        )
        assert str(response.status_code) in responses, (
            f"{method.upper()} {url} {body!r}: {response.status_code} is not documented"
        )
        described = responses[str(response.status_code)].get("content", {})
        if "application/json" in described:
            schema = described["application/json"]["schema"]
            Draft202012Validator({**_closed(schema), "components": _closed(doc["components"])}).validate(response.json)

    check()
