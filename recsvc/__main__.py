"""``python -m recsvc``: Flask's development server, for trying the API; production uses gunicorn (`make serve`)."""

from __future__ import annotations

import argparse
import logging
import sys

from posterrec_settings import ConfigError

from . import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recsvc", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        app = create_app()
    except ConfigError as err:  # a setting that cannot work: one line naming it, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    app.run(host=args.host, port=args.port, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
