"""The runner every ``python -m <package>`` command line shares: logging, sub-commands and expected errors.

A command's module builds its parser with :func:`command_parser`, registers each sub-command with a
``run(args) -> int`` function through ``set_defaults(run=...)``, and ends with :func:`main`; a command
line without sub-commands (``python -m recsvc``) calls :func:`run` itself. The settings
are checked before any command runs. Errors the user can fix (a bad catalogue, setting or index) are
printed as one ``error: ...`` line with exit code 1, and so are file system errors (a path that cannot be
read or written); anything else is a bug and keeps its traceback. Ctrl-C
and SIGTERM (a scheduler stopping the job) stop a command alike: one ``interrupted`` line, followed by the
sub-command's ``set_defaults(interrupted=...)`` note on what it leaves (a string, or a function of the
parsed arguments that reads what was left), and exit code 130 or 143 (128 + the signal).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from posterrec_settings import ConfigError, load_settings

from posterrec_atomic import not_a_folder

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
QUIET_UNLESS_VERBOSE = ("apache_beam",)
"""Libraries whose INFO messages describe their own workings: shown only with ``-v``."""
VERBOSE_HELP = "log debug messages, and the INFO messages of Apache Beam"


class Stopped(KeyboardInterrupt):
    """The KeyboardInterrupt a stop request raises. A subclass, because CPython ends the process with SIGINT, whatever
    its exit code, once a plain KeyboardInterrupt has left code run by ``eval``/``exec`` of a string (as libraries do
    while they import), even when a caller handled it; a subclass is not taken for one."""


class StopRequest:
    """The SIGINT and SIGTERM handler :func:`run` installs: raises :class:`Stopped`, notes which signal asked
    to stop (Beam reports a KeyboardInterrupt inside a stage as the stage failing), and silences Beam's report
    of the stage it stopped, which would otherwise print as a failure's traceback."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a command that signal killed: 130 for Ctrl-C, 143 for
        SIGTERM."""
        return 128 + (self.signal or signal.SIGINT)

    def __call__(self, signum: int, frame: object) -> None:
        self.signal = signum
        for library in QUIET_UNLESS_VERBOSE:
            logging.getLogger(library).setLevel(logging.CRITICAL)
        raise Stopped


STOP = StopRequest()
"""Whether the running command was asked to stop."""


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        value = _number(int, text, "a whole number")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below {minimum}")
        return value

    return parse


def fraction_below_one(text: str) -> float:
    """An argparse type: a number in [0, 1)."""
    value = _number(float, text, "a number")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1)")
    return value


def _number(kind: type, text: str, what: str):
    """``text`` read as ``kind``; an argparse error saying it is not ``what`` otherwise (argparse itself would
    name the type function)."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def describe(err: BaseException) -> str:
    """An error as one line: a file system error as ``<path>: <reason>`` (a path that cannot be written, a folder
    where a file was expected; for a failed rename, the path renamed to, which is the one the user named), any
    other as its message."""
    if isinstance(err, OSError) and err.filename and err.strerror:
        path = err.filename2 or err.filename
        blocked = not_a_folder(path) if isinstance(err, (FileExistsError, NotADirectoryError)) else None
        return f"{path}: {blocked or err.strerror}"
    return str(err)


class _SubCommandParser(argparse.ArgumentParser):
    """A sub-command's parser, which also takes ``-v/--verbose`` after the sub-command's name."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # SUPPRESS: left out after the sub-command, the flag keeps the value given before it.
        self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
        self.set_defaults(parser=self)  # so that an argument it does not know is reported with its usage


def command_parser(prog: str, description: str | None) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """A parser with ``-v/--verbose`` (before or after the sub-command) and a required sub-command, and the
    object sub-commands are added to."""
    parser = argparse.ArgumentParser(prog=prog, description=description and description.replace("``", ""))
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    return parser, parser.add_subparsers(dest="command", required=True, parser_class=_SubCommandParser)


def exit_with(code: int) -> NoReturn:
    """End the process with ``code``, a finished command's exit code, whatever stop arrives while the interpreter
    shuts down (seconds after TensorFlow or Beam ran), which would turn the code of a command that did its work
    into 130 or 143: SIGTERM ends the process at once with ``code``, Ctrl-C is ignored."""
    sys.stdout.flush()  # what the command printed, before a SIGTERM's exit could drop it
    sys.stderr.flush()
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(code))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


def main(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    expected_errors: tuple[type[BaseException], ...],
) -> int:
    """Parse ``argv`` and :func:`run` the chosen sub-command; an argument it does not take is reported with the
    sub-command's usage (exit code 2)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    return run(args, args.run, expected_errors)


def run(
    args: argparse.Namespace,
    command: Callable[[argparse.Namespace], int],
    expected_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Set up logging (``args.verbose``: debug messages, and Beam's INFO ones), check the settings and run
    ``command(args)``.

    Returns:
        The command's exit code; 1 after printing one ``error:`` line for a bad setting, a file system error
        or one of ``expected_errors``; 130 or 143 (:attr:`StopRequest.exit_code`) after one ``interrupted``
        line when Ctrl-C or SIGTERM stopped it.
    """
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT)
    for library in QUIET_UNLESS_VERBOSE:
        logging.getLogger(library).setLevel(logging.NOTSET if verbose else logging.WARNING)
    STOP.signal = None
    handlers = {stop: signal.signal(stop, STOP) for stop in (signal.SIGINT, signal.SIGTERM)}
    try:
        load_settings()
        return command(args)
    except (ConfigError, OSError, *expected_errors, KeyboardInterrupt) as err:
        if STOP.requested:
            note = getattr(args, "interrupted", None)
            note = note(args) if callable(note) else note
            print(f"interrupted: {note}" if note else "interrupted", file=sys.stderr)
            return STOP.exit_code
        if isinstance(err, KeyboardInterrupt):
            raise
        print(f"error: {describe(err)}", file=sys.stderr)
        return 1
    finally:
        for stop, handler in handlers.items():
            signal.signal(stop, handler)
