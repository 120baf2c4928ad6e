"""Property-based tests of request parsing: params.py on its own, then the endpoints of the real app.

Whatever a client sends, the answer is a value or a 400 ``ApiError`` naming the
parameter — never another exception (which the service would turn into a 500).
"""

from __future__ import annotations

import functools
import io
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_recsvc_support import DIM, publish, settings_for, synthetic_corpus

from recsvc import create_app, params, ranking
from recsvc.errors import ApiError

MAX_K = 100
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(["history", "k", "region", "exclude_history", "aggregation"])


def parses_or_400(parse, *args):
    """The parsed value, or None when ``parse`` refused with a 400 (any other exception fails the test)."""
    try:
        return parse(*args)
    except ApiError as err:
        assert err.status == 400 and err.detail
        return None


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_parse_k_accepts_exactly_the_integers_1_to_max(k: int) -> None:
    for raw in (k, str(k), f" {k} "):
        assert parses_or_400(params.parse_k, raw, MAX_K) == (k if 1 <= k <= MAX_K else None)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_parse_k_from_json_takes_integers_and_refuses_their_strings(k: int) -> None:
    from_json = functools.partial(params.parse_k, text=False)
    assert parses_or_400(from_json, k, MAX_K) == (k if 1 <= k <= MAX_K else None)
    assert parses_or_400(from_json, str(k), MAX_K) is None


OTHER_DIGITS = {
    name: str.maketrans("0123456789", digits)
    for name, digits in {
        "full-width": "０１２３４５６７８９",
        "Arabic-Indic": "٠١٢٣٤٥٦٧٨٩",
        "Devanagari": "०१२३४५६७८९",
    }.items()
}


@given(st.integers(min_value=1, max_value=MAX_K), st.sampled_from(sorted(OTHER_DIGITS)))
def test_parse_k_from_text_refuses_other_scripts_digits(k: int, script: str) -> None:
    """``k=３`` is not a number a client meant to send, though Python's ``int`` and ``\\d`` take it."""
    assert parses_or_400(params.parse_k, str(k).translate(OTHER_DIGITS[script]), MAX_K) is None


@given(st.integers(min_value=1, max_value=MAX_K), st.integers(min_value=0, max_value=5000))
def test_parse_k_from_text_takes_leading_zeros(k: int, zeros: int) -> None:
    assert params.parse_k("0" * zeros + str(k), MAX_K) == k


def test_a_text_integer_is_judged_by_its_value_not_its_length() -> None:
    assert params.parse_int_in_range("1000000000", "page", 10**9, 1, text=True) == 10**9
    assert parses_or_400(lambda raw: params.parse_int_in_range(raw, "page", 10**9, 1, text=True), "1000000001") is None


@given(st.integers(min_value=1, max_value=MAX_K))
def test_absent_k_is_the_default_capped_at_the_maximum(max_k: int) -> None:
    assert params.parse_k(None, max_k) == min(10, max_k)


@given(JSON)
def test_parse_k_never_raises_anything_but_a_400(raw) -> None:
    k = parses_or_400(params.parse_k, raw, MAX_K)
    assert k is None or (isinstance(k, int) and 1 <= k <= MAX_K)


@given(st.text(max_size=5) | JSON)
def test_parse_region_takes_exactly_what_the_documented_pattern_allows(raw) -> None:
    """The OpenAPI pattern ``^([A-Za-z]{2})?$``: a region, upper-cased, or none when absent or empty; anything else a 400."""
    if raw is None or (isinstance(raw, str) and re.fullmatch(r"([A-Za-z]{2})?", raw)):
        assert params.parse_region(raw) == (raw.upper() if raw else None)
    else:
        with pytest.raises(ApiError) as refused:
            params.parse_region(raw)
        assert refused.value.status == 400


@given(st.dictionaries(FIELDS | st.text(max_size=6), JSON, max_size=6))
def test_parse_recommendation_request_on_any_json_object(body: dict) -> None:
    req = parses_or_400(params.parse_recommendation_request, body, MAX_K, ranking.AGGREGATIONS)
    if req is not None:
        assert set(body) <= {"history", "k", "region", "exclude_history", "aggregation"}
        assert req.history and all(isinstance(i, str) and i for i in req.history)
        assert 1 <= req.k <= MAX_K and req.aggregation in (None, *ranking.AGGREGATIONS)


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=DIM, max_size=DIM) | JSON)
def test_parse_embedding_gives_a_finite_unit_vector_or_400(raw) -> None:
    vector = parses_or_400(params.parse_embedding, raw, DIM)
    if vector is not None:
        vector = np.asarray(vector, dtype=np.float32)
        assert vector.shape == (DIM,) and np.isfinite(vector).all()
        assert math.isclose(float(np.linalg.norm(vector)), 1.0, rel_tol=1e-4)


# --- the same through the real app: always 200 or a JSON 4xx ----------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("index")
    publish(root, synthetic_corpus(tmp_path_factory.mktemp("images")))
    return create_app(settings_for(root), watch=False).test_client()


def assert_ok_or_json_4xx(response) -> None:
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.data[:300]
    body = response.get_json()  # strict JSON: NaN or an HTML page would fail here
    assert isinstance(body, dict)
    if response.status_code != 200:
        assert set(body) == {"error", "detail"}


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(k=st.text(max_size=6), region=st.text(max_size=4), title_id=st.sampled_from(["t001", "crowd-q", "t000@DE", "x"]))
def test_similar_query_strings(client, k: str, region: str, title_id: str) -> None:
    response = client.get(f"/v1/posters/{title_id}/similar", query_string={"k": k, "region": region})
    assert_ok_or_json_4xx(response)
    if response.status_code == 200:
        results = response.json["results"]
        assert len(results) == int(k.strip() or 10) if k.strip() else len(results) == 10


@FUZZ
@given(
    body=st.dictionaries(FIELDS, JSON | st.lists(st.sampled_from(["t001", "t002", "crowd-q"]), max_size=3), max_size=5)
    | JSON
)
def test_recommendation_bodies(client, body) -> None:
    assert_ok_or_json_4xx(client.post("/v1/recommendations", json=body))


@FUZZ
@given(raw=st.binary(max_size=40))
def test_recommendation_raw_bytes(client, raw: bytes) -> None:
    assert_ok_or_json_4xx(client.post("/v1/recommendations", data=raw, content_type="application/json"))


@FUZZ
@given(
    embedding=st.lists(st.floats(width=64, allow_nan=False, allow_infinity=False), min_size=DIM, max_size=DIM) | JSON,
    k=JSON,
)
def test_search_bodies(client, embedding, k) -> None:
    assert_ok_or_json_4xx(client.post("/v1/search", json={"embedding": embedding, "k": k}))


def _encoded(image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(buffer, image_format)
    return buffer.getvalue()


IMAGE_SEEDS = {
    image_format: _encoded(image_format) for image_format in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "ICO")
}


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # what PIL says of some of these files
@FUZZ
@given(
    image_format=st.sampled_from(sorted(IMAGE_SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    cut=st.integers(1, 10**6),
)
def test_search_uploads_of_damaged_images(client, image_format: str, edits: list[tuple[int, int]], cut: int) -> None:
    """Bytes changed and the file cut short: refused (415, or 413 for a header grown huge) or decoded and passed to
    the model, which this index has none of (503), and never a 500."""
    data = bytearray(IMAGE_SEEDS[image_format])
    for position, byte in edits:
        data[position % len(data)] = byte
    data = data[: cut % len(data) + 1]
    response = client.post("/v1/search", data={"image": (io.BytesIO(bytes(data)), "upload")})
    assert response.status_code in (413, 415, 503), response.data[:300]
    assert set(response.get_json()) == {"error", "detail"}


@pytest.mark.parametrize(
    "raw, kind",
    [
        (None, "null"),
        (True, "a boolean"),
        (3, "a number"),
        (1.5, "a number"),
        ("3", "a string"),
        ([], "an array"),
        ({}, "an object"),
    ],
)
def test_details_name_a_value_by_its_json_kind(raw, kind: str) -> None:
    assert params.json_kind(raw) == kind
    if raw is not None:
        with pytest.raises(ApiError, match=f"one per history item, got {kind}$" if raw != [] else "got 0 values$"):
            params.parse_weights(raw, 2)


@pytest.mark.parametrize(
    ("raw", "said"),
    [("3", "a string '3'"), (2.5, "a number 2.5"), (True, "a boolean true"), (0, "0"), ([3], "an array [3]")],
)
def test_a_json_k_that_is_no_integer_is_named_by_its_json_kind(raw, said: str) -> None:
    with pytest.raises(ApiError) as refused:
        params.parse_k(raw, 100, text=False)
    assert refused.value.detail == f"k must be an integer in [1, 100], got {said}"
