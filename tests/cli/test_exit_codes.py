"""Exit codes of `strata`: usage errors exit 2 with one line on stderr, --help/--version exit 0.

The command tree is walked from the built app, so a command added later is checked too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from deepstrata.cli.main import build_app, main


def _walk(command, path: tuple[str, ...] = ()):  # noqa: ANN001, ANN202 - a click/typer command
    """Yield (path, command) for the root, every group and every command below it."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(build_app())))
COMMAND_IDS = [" ".join(("strata", *path)) for path, _ in COMMANDS]


def _required_arguments(command) -> list[str]:  # noqa: ANN001
    return [p.name for p in command.params if p.param_type_name == "argument" and p.required]


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def test_the_walk_reaches_subcommands() -> None:
    paths = {path for path, _ in COMMANDS}
    assert {("train",), ("lab",), ("lab", "optimizers"), ("list",)} <= paths


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=COMMAND_IDS)
def test_unknown_option_exits_2_with_one_line(path: tuple[str, ...], command, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    assert main([*path, "--no-such-option"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--no-such-option" in line
    assert f"see {' '.join(('strata', *path))} --help" in line


WITH_ARGUMENTS = [(path, command) for path, command in COMMANDS if _required_arguments(command)]


def test_some_commands_have_required_arguments() -> None:
    assert any(path == ("finetune",) for path, _ in WITH_ARGUMENTS)


@pytest.mark.parametrize(("path", "command"), WITH_ARGUMENTS, ids=[" ".join(p) for p, _ in WITH_ARGUMENTS])
def test_missing_argument_exits_2_with_one_line(path: tuple[str, ...], command, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    assert main(list(path)) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "Missing argument" in line and _required_arguments(command)[0] in line.lower()


def test_bad_option_value_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "optimizers", "--steps", "many"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--steps" in line and "see strata lab optimizers --help" in line


def test_unknown_command_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trian"]) == 2
    assert "did you mean 'train'" in _one_error_line(capsys.readouterr().err).lower()


def test_version_prints_the_version_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    from deepstrata import __version__

    assert main(["--version"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"deepstrata {__version__}" and captured.err == ""


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=COMMAND_IDS)
def test_help_exits_0(path: tuple[str, ...], command, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    assert main([*path, "--help"]) == 0
    captured = capsys.readouterr()
    assert "Usage" in captured.out and captured.err == ""


def test_a_group_alone_shows_its_help_without_an_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab"]) == 2
    captured = capsys.readouterr()
    assert "optimizers" in captured.out and "error" not in captured.err


def _strata(*args: str) -> subprocess.CompletedProcess[str]:
    strata = Path(sys.executable).with_name("strata")
    return subprocess.run([str(strata), *args], capture_output=True, text=True, timeout=120)


def test_installed_entry_point_exit_codes() -> None:
    bogus = _strata("train", "--bogus")
    assert bogus.returncode == 2, bogus.stderr
    assert _one_error_line(bogus.stderr) == "error: No such option: --bogus (see strata train --help)"
    version = _strata("--version")
    assert (version.returncode, version.stdout.strip(), version.stderr) == (0, "deepstrata 0.1.0", "")
    assert _strata("--help").returncode == 0
