"""The runner every ``python -m <package>`` command line shares: logging, sub-commands and expected errors.

A command's module builds its parser with :func:`command_parser`, registers each sub-command with a
``run(args) -> int`` function through ``set_defaults(run=...)``, and ends with :func:`main`. The settings
are checked before any command runs. Errors the user can fix (a bad catalogue, setting or index) are
printed as one ``error: ...`` line with exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from posterrec_settings import ConfigError, load_settings

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def command_parser(prog: str, description: str | None) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """A parser with ``-v/--verbose`` and a required sub-command, and the object sub-commands are added to."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return parser, parser.add_subparsers(dest="command", required=True)


def main(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    expected_errors: tuple[type[BaseException], ...],
) -> int:
    """Parse ``argv``, set up logging, check the settings and run the chosen sub-command.

    Returns:
        The sub-command's exit code, or 1 after printing one ``error:`` line for a bad setting or one of
        ``expected_errors``.
    """
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO, format=LOG_FORMAT)
    try:
        load_settings()
        return args.run(args)
    except (ConfigError, *expected_errors) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
