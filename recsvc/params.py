"""Parsing and validating request parameters, apart from the views so it can be tested on its own.

Each parser names the parameter and the reason in its error, so a client
sees ``k must be an integer in [1, 100], got '0'`` rather than a bare 400.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np

from indexer.regions import is_region_code

from .errors import bad_request, echoed, echoed_list

DECIMAL = re.compile(r"[+]?0*([0-9]{1,18})")
"""ASCII digits only (``\\d`` would also take other scripts' digits, ``k=３``), leading zeros aside: the
value decides the range, not the length of its text (``page=1000000000``, ``k=0010``), and 18 digits keep
``int`` cheap and beyond any maximum."""


MAX_PAGE = 10**9
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 24
"""Paging bounds of the catalogue listing, here so that its view and the OpenAPI document share them."""


def parse_int_in_range(raw: Any, name: str, maximum: int, default: int, *, text: bool) -> int:
    """``raw`` as an integer in [1, maximum], ``default`` (at most ``maximum``) when absent; booleans and floats are refused.

    ``text`` says where ``raw`` comes from: a query string or form field is text, so a digit string is
    its integer; a JSON body has integers, so a string there is refused, as the OpenAPI schema says.
    """
    if raw is None:
        return min(default, maximum)  # a deployment's maximum below the default caps it
    if type(raw) is int and 1 <= raw <= maximum:  # the usual case, without the text checks below
        return raw
    digits = DECIMAL.fullmatch(raw.strip()) if text and isinstance(raw, str) else None
    value = raw if type(raw) is int else int(digits.group(1)) if digits else None
    if value is None or not 1 <= value <= maximum:
        kind = "" if text or type(raw) is int else f"{json_kind(raw)} "  # a JSON "3" is a string, not a number
        raise bad_request(f"{name} must be an integer in [1, {maximum}], got {kind}{echoed(raw)}")
    return value


def parse_k(raw: Any, max_k: int, default: int = 10, *, text: bool = True) -> int:
    """``k`` as an integer in [1, max_k], from a query string or form field (``text``) or a JSON body."""
    return parse_int_in_range(raw, "k", max_k, default, text=text)


def parse_region(raw: Any) -> str | None:
    """A region code, upper-cased, or None when absent or empty (as the OpenAPI pattern ``^([A-Za-z]{2})?$`` says).

    Any well-formed code is taken: a region without variants is served the originals, as one whose variants
    are not published yet is.
    """
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not is_region_code(raw):
        raise bad_request(f"region must be a two-letter region code, got {echoed(raw)}")
    return raw.upper()


def parse_bool(raw: Any, name: str, default: bool) -> bool:
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    raise bad_request(f"{name} must be true or false, got {echoed(raw)}")


@dataclasses.dataclass(slots=True)
class RecommendationRequest:
    history: list[str]
    k: int
    region: str | None
    exclude_history: bool
    aggregation: str | None
    signal: str | None = None
    negative: list[str] = dataclasses.field(default_factory=list)
    weights: np.ndarray | None = None
    """Per history item, scaled so that the largest is 1."""
    genres: list[str] = dataclasses.field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    exclude: list[str] = dataclasses.field(default_factory=list)

    @property
    def has_preferences(self) -> bool:
        """Whether the request asks for more than its history's nearest titles (weights, negatives, filters)."""
        return bool(
            self.negative
            or self.weights is not None
            or self.genres
            or self.exclude
            or self.year_min is not None
            or self.year_max is not None
        )


EXCLUDE_HISTORY_BY_DEFAULT = True
"""A history's own titles are left out of its recommendations unless the request asks for them."""
MAX_HISTORY = 1000
MAX_EXCLUDE = 10_000
MAX_GENRES = 100
YEAR_RANGE = (0, 9999)
SIGNALS = ("poster", "behaviour", "hybrid")
"""What ranks recommendations: poster similarity, the behaviour model's vectors, or both (``recsvc.signals``)."""
PLAIN_FIELDS = frozenset({"history", "k", "region", "exclude_history", "aggregation"})
"""Fields of a request ranked by poster similarity alone; the others are parsed only when present."""
RECOMMENDATION_FIELDS = PLAIN_FIELDS | {"signal", "negative", "weights", "genres", "year_min", "year_max", "exclude"}
SEARCH_FIELDS = frozenset({"embedding", "k", "region"})
"""Fields of a JSON ``POST /v1/search``."""


def single_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each parameter's value, or a 400 naming a parameter given more than once (which of its values was meant
    cannot be told)."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise bad_request(f"parameter {echoed(name)} is given more than once; give it once")
        values[name] = value
    return values


def json_kind(value: Any) -> str:
    """What ``value`` is, in JSON's words (for an error detail): null, a boolean, a number, a string, an array or
    an object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    kinds = ((int, "a number"), (float, "a number"), (str, "a string"), (list, "an array"), (dict, "an object"))
    return next((kind for type_, kind in kinds if isinstance(value, type_)), type(value).__name__)


def refuse_unknown_fields(body: dict, allowed: Collection[str]) -> None:
    """A 400 naming the fields of ``body`` not in ``allowed``: a typo would otherwise be ignored silently."""
    unknown = body.keys() - set(allowed)
    if unknown:
        raise bad_request(f"unknown field(s) {echoed_list(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}")


def parse_recommendation_request(body: dict, max_k: int, aggregations: Collection[str]) -> RecommendationRequest:
    """The JSON body of ``POST /v1/recommendations``; unknown fields are refused to catch typos."""
    refuse_unknown_fields(body, RECOMMENDATION_FIELDS)
    history = body.get("history")
    if not isinstance(history, list) or not history:
        raise bad_request("history must be a non-empty list of poster ids, oldest first")
    if not all(isinstance(item, str) and item for item in history):
        raise bad_request("history must hold poster ids as non-empty strings")
    if len(history) > MAX_HISTORY:
        raise bad_request(f"history holds {len(history)} ids; at most {MAX_HISTORY} are accepted")
    req = RecommendationRequest(
        history=history,
        k=parse_k(body.get("k"), max_k, text=False),
        region=parse_region(body.get("region")),
        exclude_history=parse_bool(body.get("exclude_history"), "exclude_history", EXCLUDE_HISTORY_BY_DEFAULT),
        aggregation=parse_choice(body.get("aggregation"), "aggregation", aggregations),
    )
    if not body.keys() <= PLAIN_FIELDS:
        parse_preferences(body, req)
    return req


def parse_preferences(body: dict, req: RecommendationRequest) -> None:
    """Fill ``req``'s signal, negative examples, weights and filters from ``body``."""
    req.signal = parse_choice(body.get("signal"), "signal", SIGNALS)
    req.negative = parse_ids(body.get("negative"), "negative", MAX_HISTORY)
    req.exclude = parse_ids(body.get("exclude"), "exclude", MAX_EXCLUDE)
    req.genres = parse_ids(body.get("genres"), "genres", MAX_GENRES)
    req.weights = parse_weights(body.get("weights"), len(req.history))
    req.year_min = parse_year(body.get("year_min"), "year_min")
    req.year_max = parse_year(body.get("year_max"), "year_max")
    if req.year_min is not None and req.year_max is not None and req.year_min > req.year_max:
        raise bad_request(f"year_min ({req.year_min}) must not be after year_max ({req.year_max})")


def parse_choice(raw: Any, name: str, choices: Collection[str]) -> str | None:
    """One of ``choices``, None when absent."""
    if raw is not None and (not isinstance(raw, str) or raw not in choices):
        raise bad_request(f"{name} must be one of {', '.join(sorted(choices))}, got {echoed(raw)}")
    return raw


def parse_ids(raw: Any, name: str, limit: int) -> list[str]:
    """A list of at most ``limit`` non-empty strings (ids or genre names), empty when absent."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(item, str) and item for item in raw):
        raise bad_request(f"{name} must be a list of non-empty strings")
    if len(raw) > limit:
        raise bad_request(f"{name} holds {len(raw)} entries; at most {limit} are accepted")
    return raw


def parse_weights(raw: Any, count: int) -> np.ndarray | None:
    """Per-item history weights: ``count`` finite numbers >= 0, not all 0; scaled so that the largest is 1."""
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != count:
        got = f"{len(raw)} values" if isinstance(raw, list) else json_kind(raw)
        raise bad_request(f"weights must be a list of {count} numbers, one per history item, got {got}")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < float("inf") for x in raw):
        raise bad_request("weights must hold only finite numbers >= 0")
    try:
        weights = np.asarray(raw, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise bad_request("weights must hold only finite numbers >= 0") from None
    largest = float(weights.max())
    if not 0 < largest < float("inf"):
        raise bad_request("weights must hold finite numbers and at least one above 0")
    return weights / largest


def parse_year(raw: Any, name: str) -> int | None:
    if raw is None:
        return None
    if type(raw) is not int or not YEAR_RANGE[0] <= raw <= YEAR_RANGE[1]:
        raise bad_request(f"{name} must be an integer year in [{YEAR_RANGE[0]}, {YEAR_RANGE[1]}], got {echoed(raw)}")
    return raw


def parse_embedding(raw: Any, dim: int) -> np.ndarray:
    """A query embedding of the index's dimension as a float32 unit vector.

    Checked after normalising in float64 (scaled by its largest value first), because values that are
    finite in JSON can still overflow float32 or vanish to a zero norm and would otherwise search with NaN.
    """
    if raw is None:
        raise bad_request(f"embedding is missing: send a list of {dim} numbers")
    if not isinstance(raw, list) or len(raw) != dim:
        got = f"{len(raw)} values" if isinstance(raw, list) else json_kind(raw)
        raise bad_request(f"embedding must be a list of {dim} numbers, got {got}")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) < float("inf") for x in raw):
        raise bad_request("embedding must hold only finite numbers")
    try:
        vector = np.asarray(raw, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise bad_request("embedding must hold only finite numbers") from None
    largest = float(np.max(np.abs(vector))) if np.isfinite(vector).all() else float("inf")
    if not largest < float("inf"):
        raise bad_request("embedding must hold only finite numbers")
    if largest == 0.0:
        raise bad_request("embedding must not be all zeros")
    scaled = vector / largest
    unit = (scaled / np.linalg.norm(scaled)).astype(np.float32)
    if not np.isfinite(unit).all() or np.linalg.norm(unit) < 0.5:
        raise bad_request("embedding is too close to zero to give a direction")
    return unit
