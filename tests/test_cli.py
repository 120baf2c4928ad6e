"""The command-line runner the ``python -m`` entry points share."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import posterrec_cli

REPO = Path(__file__).resolve().parents[1]


class BadCatalogue(ValueError):
    pass


def _parser(fail_with: BaseException | None):
    parser, commands = posterrec_cli.command_parser("python -m demo", "A demo command line.")

    def run(args) -> int:
        if fail_with is not None:
            raise fail_with
        return 7

    commands.add_parser("go").set_defaults(run=run)
    return parser


def test_the_chosen_sub_command_runs_and_its_exit_code_is_returned() -> None:
    assert posterrec_cli.main(_parser(None), ["-v", "go"], (BadCatalogue,)) == 7


def test_an_expected_error_is_one_line_and_exit_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert posterrec_cli.main(_parser(BadCatalogue("catalog.csv: line 3: no id")), ["go"], (BadCatalogue,)) == 1
    assert capsys.readouterr().err == "error: catalog.csv: line 3: no id\n"


def test_any_other_error_keeps_its_traceback() -> None:
    with pytest.raises(KeyError):
        posterrec_cli.main(_parser(KeyError("bug")), ["go"], (BadCatalogue,))


def test_a_sub_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        posterrec_cli.main(_parser(None), [], (BadCatalogue,))
    assert exited.value.code == 2 and "command" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["-v", "go"], ["go", "-v"], ["go", "--verbose"]])
def test_verbose_is_taken_before_or_after_the_sub_command(argv: list[str]) -> None:
    assert _parser(None).parse_args(argv).verbose is True


def test_without_verbose_neither_place_sets_it() -> None:
    assert _parser(None).parse_args(["go"]).verbose is False


@pytest.mark.parametrize(("argv", "beam_level"), [(["go"], logging.WARNING), (["go", "-v"], logging.NOTSET)])
def test_beams_info_messages_are_held_back_unless_verbose(argv: list[str], beam_level: int) -> None:
    """NOTSET: Beam's loggers then pass on what the root logger passes (INFO, or DEBUG with -v)."""
    beam = logging.getLogger("apache_beam")
    beam.setLevel(logging.ERROR)
    try:
        assert posterrec_cli.main(_parser(None), argv, ()) == 7
        assert beam.level == beam_level
    finally:
        beam.setLevel(logging.NOTSET)


def _stopped_by(stop: int, then: type[BaseException] | None = None):
    """A command that sends itself ``stop`` and, like Beam does with a stage it was running, reports the
    interruption as ``then``."""

    def run(args) -> int:
        try:
            os.kill(os.getpid(), stop)
            time.sleep(5)  # the handler raises before this ends
        except KeyboardInterrupt:
            if then is None:
                raise
            raise then("stage failed: KeyboardInterrupt") from None
        return 0

    return run


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("reported_as", [None, BadCatalogue], ids=["as-is", "wrapped"])
def test_a_stopped_command_prints_one_line_with_its_note_and_exits_as_the_signal_says(
    capsys: pytest.CaptureFixture[str], stop: int, reported_as: type[BaseException] | None
) -> None:
    parser, commands = posterrec_cli.command_parser("python -m demo", "A demo command line.")
    commands.add_parser("go").set_defaults(run=_stopped_by(stop, reported_as), interrupted="nothing was published")
    before = signal.getsignal(stop)
    assert posterrec_cli.main(parser, ["go"], (BadCatalogue,)) == 128 + stop  # as a shell reports it
    assert capsys.readouterr().err == "interrupted: nothing was published\n"
    assert signal.getsignal(stop) is before, "the command's handler should be removed after it"


def test_an_error_without_a_stop_is_still_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    """After a stopped command, the next one in the same process starts with no stop requested."""
    parser, commands = posterrec_cli.command_parser("python -m demo", "A demo command line.")
    commands.add_parser("go").set_defaults(run=_stopped_by(signal.SIGTERM))
    assert posterrec_cli.main(parser, ["go"], ()) == 128 + signal.SIGTERM
    assert posterrec_cli.main(_parser(BadCatalogue("bad row")), ["go"], (BadCatalogue,)) == 1
    assert capsys.readouterr().err == "interrupted\nerror: bad row\n"


def test_a_file_system_error_is_one_line_naming_the_path(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    def write_into_a_folder(args) -> int:
        tmp_path.joinpath("out.csv").mkdir()
        tmp_path.joinpath("out.csv.tmp").write_text("rows")
        tmp_path.joinpath("out.csv.tmp").replace(tmp_path / "out.csv")  # a rename onto a folder: the user's path
        return 0

    parser, commands = posterrec_cli.command_parser("python -m demo", "A demo command line.")
    commands.add_parser("go").set_defaults(run=write_into_a_folder)
    assert posterrec_cli.main(parser, ["go"], ()) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'out.csv'}: Is a directory\n"


@pytest.mark.parametrize("folder", ["notes.txt", "notes.txt/index"])
def test_a_folder_that_a_file_stands_in_the_way_of_is_named_so(capsys, tmp_path, folder: str) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    parser, commands = posterrec_cli.command_parser("python -m demo", "A demo command line.")
    commands.add_parser("go").set_defaults(run=lambda args: (tmp_path / folder).mkdir(parents=True, exist_ok=True))
    assert posterrec_cli.main(parser, ["go"], ()) == 1
    in_the_way = "it" if folder == "notes.txt" else tmp_path / "notes.txt"
    assert capsys.readouterr().err == f"error: {tmp_path / folder}: {in_the_way} is a file, not a folder\n"


def test_an_argument_a_sub_command_does_not_take_is_reported_with_its_usage(capsys) -> None:
    parser, commands = posterrec_cli.command_parser("python -m demo", "``python -m demo``: a demo.")
    commands.add_parser("go").add_argument("--model")
    with pytest.raises(SystemExit) as exited:
        posterrec_cli.main(parser, ["go", "--modle", "m"], ())
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "usage: python -m demo go" in err and "unrecognized arguments: --modle m" in err
    assert "``" not in parser.format_help()


STOPPED_INSIDE_EXEC = """
import argparse, sys
import posterrec_cli

def go(args):
    exec("import os, signal, time\\nos.kill(os.getpid(), signal.{stop})\\ntime.sleep(30)")  # as libraries exec code
    return 0

sys.exit(posterrec_cli.run(argparse.Namespace(), go))
"""


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_stop_inside_exec_d_code_still_exits_with_the_stops_code(tmp_path: Path, stop: str) -> None:
    """CPython kills a ``python -m`` process by SIGINT once a plain KeyboardInterrupt left exec'd code, even handled."""
    (tmp_path / "stopped_demo.py").write_text(STOPPED_INSIDE_EXEC.format(stop=stop))
    command = [sys.executable, "-m", "stopped_demo"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    done = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + getattr(signal, stop), done.stderr
    assert done.stderr == "interrupted\n"


STOPPED_WHILE_SHUTTING_DOWN = """
import argparse, os, signal, threading, time
import posterrec_cli

def finish_slowly():  # as a library's worker thread, which the interpreter waits for before it exits
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.5)

def go(args):
    threading.Thread(target=finish_slowly).start()
    return 0

posterrec_cli.exit_with(posterrec_cli.run(argparse.Namespace(), go))
"""


def test_a_stop_after_the_command_finished_keeps_its_exit_code(tmp_path: Path) -> None:
    """SIGTERM while the interpreter waits for a thread; SIGINT matters late in the interpreter's shutdown, where
    CPython puts back the signal's default action unless it is ignored, a moment a test cannot aim at."""
    (tmp_path / "finished_demo.py").write_text(STOPPED_WHILE_SHUTTING_DOWN)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    done = subprocess.run(
        [sys.executable, "-m", "finished_demo"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_a_stop_note_can_say_what_the_command_left(capsys: pytest.CaptureFixture[str]) -> None:
    parser, commands = posterrec_cli.command_parser("python -m demo", "A demo command line.")
    go = commands.add_parser("go")
    go.add_argument("--out", default="out")
    go.set_defaults(run=_stopped_by(signal.SIGINT), interrupted=lambda args: f"{args.out} is as it was")
    assert posterrec_cli.main(parser, ["go", "--out", "models/a"], ()) == 130
    assert capsys.readouterr().err == "interrupted: models/a is as it was\n"
