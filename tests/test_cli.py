"""The command-line runner the ``python -m`` entry points share."""

from __future__ import annotations

import pytest

import posterrec_cli


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
