"""JSON by orjson, an order of magnitude faster than the standard library on API responses and bodies
(docs/benchmarks.md, "Service").

What orjson refuses to parse (the NaN and Infinity literals Python's parser accepts) the standard
library parses as before, so a body's values reach the parameter checks and
get their message rather than a generic parse error; an integer beyond 64
bits reaches them as a float. A body nested deeper than either parser goes
(orjson stops at 1,024 levels, the standard library at Python's recursion
limit) is malformed JSON like any other, a 400, not a ``RecursionError``.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider with orjson reading and writing; what orjson cannot read or write goes to the standard library."""

    sort_keys = False  # fields in the order written (id first), as orjson writes them

    def _encode(self, obj: Any, option: int = 0) -> bytes:
        try:
            return orjson.dumps(obj, default=self.default, option=option)
        except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits, which JSON allows
            text = super().dumps(obj, indent=2 if option & orjson.OPT_INDENT_2 else None)
            return (text + "\n" if option & orjson.OPT_APPEND_NEWLINE else text).encode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        if kwargs:  # options for the standard library's parser
            return super().loads(s, **kwargs)
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError:
            pass
        try:
            return super().loads(s)
        except RecursionError:
            raise ValueError("JSON nested too deeply to parse") from None

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs:  # indent, separators and the like, which orjson does not take
            return super().dumps(obj, **kwargs)
        return self._encode(obj).decode()

    def response(self, *args: Any, **kwargs: Any):
        """Like Flask's: indented in debug mode (or when ``compact`` is False), compact otherwise."""
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(self.response_body(obj), mimetype=self.mimetype)

    def response_body(self, obj: Any) -> bytes:
        """The body :meth:`response` sends for ``obj``."""
        pretty = self.compact is False or (self.compact is None and self._app.debug)
        return self._encode(obj, orjson.OPT_APPEND_NEWLINE | (orjson.OPT_INDENT_2 if pretty else 0))
