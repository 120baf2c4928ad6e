"""The OpenAPI 3.1 description of ``/v1``, served at ``/v1/openapi.json``."""

from __future__ import annotations

from collections.abc import Sequence

from posterrec_settings import Settings

from indexer.regions import REGION_CODE

from . import params
from .ranking import AGGREGATIONS

ERROR = {"$ref": "#/components/schemas/Error"}


RETRY_AFTER = {
    "description": "Seconds to wait before trying again; sent with the `busy` error (the server has no room for "
    "the request now) and with `index_not_ready` while the service watches for a first index version",
    "schema": {"type": "integer"},
}


def _errors(*codes: int) -> dict:
    """The error responses ``codes``: the Error schema, and on a 503 the ``Retry-After`` it may carry."""
    responses = {}
    for code in codes:
        responses[str(code)] = {"description": "error", "content": {"application/json": {"schema": ERROR}}}
        if code == 503:
            responses[str(code)]["headers"] = {"Retry-After": RETRY_AFTER}
    return responses


def _ok(schema_ref: str) -> dict:
    return {
        "200": {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
        }
    }


def recommendation_preferences() -> dict:
    """The request fields beyond the history: signal, negative examples, weights and filters."""
    ids = {"type": "array", "items": {"type": "string", "minLength": 1}}
    year = {"type": "integer", "minimum": params.YEAR_RANGE[0], "maximum": params.YEAR_RANGE[1]}
    return {
        "signal": {
            "type": "string",
            "enum": list(params.SIGNALS),
            "description": "poster: poster similarity; behaviour: the behaviour model trained on watch logs; "
            "hybrid: behaviour similarity to the history's warm titles (watched in training) plus poster "
            "similarity, poster alone for a history of cold titles only. Default: hybrid when the served "
            "version has behaviour vectors, else poster (the others are then a 400)",
        },
        "negative": {
            **ids,
            "maxItems": params.MAX_HISTORY,
            "description": "poster ids to move away from (less like these); never returned",
        },
        "weights": {
            "type": "array",
            "items": {"type": "number", "minimum": 0},
            "description": "one weight >= 0 per history item (not all 0), multiplying its recency weight",
        },
        "genres": {
            **ids,
            "maxItems": params.MAX_GENRES,
            "description": "only titles with at least one of these genres (as /v1/genres lists them)",
        },
        "year_min": {**year, "description": "only titles of this year or later (unknown years are left out)"},
        "year_max": {**year, "description": "only titles of this year or earlier (unknown years are left out)"},
        "exclude": {
            **ids,
            "maxItems": params.MAX_EXCLUDE,
            "description": "poster ids never to return (ids the version lacks are ignored)",
        },
    }


def openapi_document(settings: Settings, example_titles: Sequence[str] = ()) -> dict:
    """The document for ``settings``' limits; ``example_titles`` (ids of the served catalogue) fill the examples
    that the interactive page at ``/v1/docs`` sends, so that trying an endpoint there answers with results."""
    poster_id = {"name": "title_id", "in": "path", "required": True, "schema": {"type": "string"}}
    recommendation_body = {"schema": {"$ref": "#/components/schemas/RecommendationRequest"}}
    if example_titles:
        poster_id["example"] = example_titles[0]
        recommendation_body["example"] = {"history": list(example_titles), "k": min(10, settings.max_k)}
    k_schema = {
        "type": "integer",
        "minimum": 1,
        "maximum": settings.max_k,
        "default": params.parse_k(None, settings.max_k),
    }
    region_schema = {
        "type": "string",
        "pattern": f"^({REGION_CODE.pattern})?$",
        "description": "a two-letter region code, any case; empty for none. A region without variants gets the originals",
    }
    k = {"name": "k", "in": "query", "schema": k_schema}
    region = {"name": "region", "in": "query", "schema": region_schema}
    results = {
        "index_version": {"type": "string"},
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
    }
    poster = {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "year": {"type": ["integer", "null"]},
        "genres": {"type": "array", "items": {"type": "string"}},
        "image_url": {"type": "string"},
        "variant_regions": {"type": "array", "items": {"type": "string"}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PosterRec",
            "version": "1",
            "description": "Similar posters, recommendations and regional variants.",
        },
        "paths": {
            "/v1/posters/{title_id}/similar": {
                "get": {
                    "summary": "Titles whose posters look most like this one (never itself, variants collapsed)",
                    "parameters": [poster_id, k, region],
                    "responses": {**_ok("SimilarResults"), **_errors(400, 404, 503)},
                }
            },
            "/v1/recommendations": {
                "post": {
                    "summary": "Recommendations from a watch history (ids oldest first)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": recommendation_body},
                    },
                    "responses": {**_ok("Recommendations"), **_errors(400, 404, 413, 415, 503)},
                }
            },
            "/v1/search": {
                "post": {
                    "summary": "Titles similar to an uploaded image or a given embedding",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["image"],
                                    "properties": {
                                        "image": {"type": "string", "format": "binary"},
                                        "k": k_schema,
                                        "region": region_schema,
                                    },
                                }
                            },
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["embedding"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "embedding": {"type": "array", "items": {"type": "number"}},
                                        "k": k_schema,
                                        "region": region_schema,
                                    },
                                }
                            },
                        },
                    },
                    "responses": {**_ok("Results"), **_errors(400, 413, 415, 503)},
                }
            },
            "/v1/posters": {
                "get": {
                    "summary": "Catalogue listing: every word of q in the title, optional genre and variant coverage, paginated",
                    "parameters": [
                        {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 200}},
                        {"name": "genre", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "page",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": params.MAX_PAGE, "default": 1},
                        },
                        {
                            "name": "per_page",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": params.MAX_PER_PAGE,
                                "default": params.DEFAULT_PER_PAGE,
                            },
                        },
                        region,
                        {
                            "name": "has_variant",
                            "in": "query",
                            "description": "with region: only titles with (true) or without (false) a variant there",
                            "schema": {"type": "string", "enum": ["true", "false"]},
                        },
                    ],
                    "responses": {**_ok("Listing"), **_errors(400, 503)},
                }
            },
            "/v1/genres": {
                "get": {"summary": "Genres with their title counts", "responses": {**_ok("Genres"), **_errors(503)}}
            },
            "/v1/posters/{title_id}": {
                "get": {
                    "summary": "Poster metadata",
                    "parameters": [poster_id],
                    "responses": {**_ok("Poster"), **_errors(404, 503)},
                }
            },
            "/v1/posters/{title_id}/embedding": {
                "get": {
                    "summary": "The poster's embedding in the served version's space, as `POST /v1/search` takes it",
                    "parameters": [poster_id],
                    "responses": {**_ok("Embedding"), **_errors(404, 503)},
                }
            },
            "/v1/posters/{title_id}/variants": {
                "get": {
                    "summary": "Localized variants, optionally of one region",
                    "parameters": [poster_id, region],
                    "responses": {**_ok("Variants"), **_errors(400, 404, 503)},
                }
            },
            "/v1/posters/{title_id}/image": {
                "get": {
                    "summary": "Image bytes; the original when the region has no variant (header X-PosterRec-Fallback)",
                    "parameters": [poster_id, region],
                    "responses": {
                        "200": {"description": "image", "content": {"image/*": {}}},
                        "206": {
                            "description": "the part of the image a Range header asked for",
                            "content": {"image/*": {}},
                        },
                        "304": {"description": "not modified since the ETag or date the request names"},
                        "416": {"description": "the Range header names no part of the image"},
                        **_errors(400, 404, 503),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                },
                "Result": {
                    "type": "object",
                    "required": ["id", "title", "score", "image_url"],
                    "properties": {
                        "id": {"type": "string"},
                        "title": {"type": "string"},
                        "score": {"type": "number"},
                        "image_url": {"type": "string"},
                        "region": {"type": ["string", "null"]},
                        "localized_title": {"type": ["string", "null"]},
                    },
                },
                "Results": {"type": "object", "required": ["results", "index_version"], "properties": results},
                "SimilarResults": {
                    "type": "object",
                    "required": ["id", "results", "index_version"],
                    "properties": {"id": {"type": "string", "description": "the poster asked about"}, **results},
                },
                "Recommendations": {
                    "type": "object",
                    "required": ["aggregation", "signal", "results", "index_version"],
                    "properties": {
                        "aggregation": {
                            "type": "string",
                            "enum": list(AGGREGATIONS),
                            "description": "how the history was aggregated",
                        },
                        "signal": {
                            "type": "string",
                            "enum": list(params.SIGNALS),
                            "description": "what ranked the results: 'poster' where 'hybrid' fell back to it for a "
                            "history of cold titles only",
                        },
                        **results,
                    },
                },
                "RecommendationRequest": {
                    "type": "object",
                    "required": ["history"],
                    "additionalProperties": False,
                    "properties": {
                        "history": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 1000,
                            "items": {"type": "string", "minLength": 1},
                        },
                        "k": k_schema,
                        "region": region_schema,
                        "exclude_history": {"type": "boolean", "default": params.EXCLUDE_HISTORY_BY_DEFAULT},
                        "aggregation": {
                            "type": "string",
                            "enum": list(AGGREGATIONS),
                            "description": "how the history becomes a query (default: recent_neighbours); 'fusion' "
                            "is experimental: it ranks worse than the others on MovieLens",
                        },
                        **recommendation_preferences(),
                    },
                },
                "Embedding": {
                    "type": "object",
                    "required": ["id", "index_version", "embedding"],
                    "properties": {
                        "id": {"type": "string"},
                        "index_version": {"type": "string"},
                        "model": {
                            "type": ["string", "null"],
                            "description": "sha256 of the manifest of the model that embedded the version",
                        },
                        "embedding": {"type": "array", "items": {"type": "number"}, "description": "unit length"},
                    },
                },
                "Poster": {
                    "type": "object",
                    "required": ["id", "title", "genres", "image_url"],
                    "properties": {**poster, "index_version": {"type": "string"}},
                },
                "Listing": {
                    "type": "object",
                    "required": ["results", "total", "page", "pages"],
                    "properties": {
                        "index_version": {"type": "string"},
                        "total": {"type": "integer"},
                        "page": {"type": "integer"},
                        "pages": {"type": "integer"},
                        "per_page": {"type": "integer"},
                        "q": {"type": ["string", "null"]},
                        "genre": {"type": ["string", "null"]},
                        "region": {"type": ["string", "null"]},
                        "has_variant": {"type": ["boolean", "null"]},
                        "with_variant": {
                            "type": ["integer", "null"],
                            "description": "with region: titles matching q and genre that have a variant there",
                        },
                        "results": {"type": "array", "items": {"$ref": "#/components/schemas/ListedPoster"}},
                    },
                },
                "ListedPoster": {
                    "type": "object",
                    "required": ["id", "title", "genres", "image_url", "variant_regions"],
                    "properties": {
                        **poster,
                        "region": {
                            "type": ["string", "null"],
                            "description": "the region whose variant image_url shows, if any",
                        },
                    },
                },
                "Genres": {
                    "type": "object",
                    "required": ["genres"],
                    "properties": {
                        "index_version": {"type": "string"},
                        "genres": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"genre": {"type": "string"}, "titles": {"type": "integer"}},
                            },
                        },
                    },
                },
                "Variants": {
                    "type": "object",
                    "required": ["id", "variants"],
                    "properties": {
                        "id": {"type": "string"},
                        "variants": {"type": "array", "items": {"$ref": "#/components/schemas/Variant"}},
                    },
                },
                "Variant": {
                    "type": "object",
                    "required": ["region", "language", "title", "image_url"],
                    "properties": {
                        "region": region_schema,
                        "language": {"type": "string"},
                        "title": {"type": "string"},
                        "image_url": {"type": "string"},
                    },
                },
            }
        },
    }
