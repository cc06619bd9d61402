"""The `strata` command: one entry point, commands discovered from `cli/commands/`.

Problem: a CLI that imports torch to print `--help` feels broken, and one whose commands are
hard-wired in a single file must be edited by every new capability.
Idea: `main` builds a typer app from every module in `deepstrata.cli.commands` (each has a
`register(app)` and imports heavy libraries only inside its command), and turns every
`DeepstrataError` into one line on stderr with its exit code (2 for bad input). Usage errors
(unknown option, missing argument, bad option value) are one line and exit 2 as well, with a
pointer to the command's --help. `--debug` anywhere on the line shows the traceback instead.
Before torch loads, `main` sets OpenMP's wait policy to passive unless the user chose one.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer

from deepstrata import __version__
from deepstrata.cli import commands

HELP = "deepstrata: every idea of deep learning as a real, tested component. Recipes in, run directories out."


def _print_version(value: bool) -> None:
    # An eager callback runs while the options are parsed, before the group asks for a command.
    if value:
        typer.echo(f"deepstrata {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root(
        version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
        debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors (also accepted after a command)."),
    ) -> None:
        pass

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)
    return app


# Waiting OpenMP threads sleep instead of spinning, so a core another program holds costs a
# parallel region a wake-up, not a spin (issue 20: 186.5 s -> 30.9 s for digits_cnn beside a
# busy loop). OpenMP reads it once, when torch loads, hence before any command imports torch;
# a value the user set wins. `training/threads.py` picks how many threads there are.
WAIT_POLICY = ("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault(*WAIT_POLICY)
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    # Parse and invoke by hand rather than through `app(...)`: in non-standalone mode typer turns
    # `Exit(code)` into a return value indistinguishable from a command's own, and re-raises
    # usage errors that we want as one line.
    command = typer.main.get_command(build_app())
    try:
        with command.make_context("strata", args) as ctx:
            command.invoke(ctx)
    except SystemExit as stop:
        return int(stop.code or 0) if isinstance(stop.code, int) else 1
    except BaseException as error:  # noqa: BLE001 - the CLI's last line of defence
        return report_error(error, debug=debug)
    return 0


def report_error(error: BaseException, *, debug: bool) -> int:
    # typer (0.29 here) vendors click as `typer._click`: its exceptions are not the real click's,
    # so handlers written against `click.exceptions` never match what typer raises.
    try:
        from typer._click import exceptions as click_exceptions
    except ImportError:  # pragma: no cover - an older typer built on the real click
        from click import exceptions as click_exceptions

    from deepstrata.errors import DeepstrataError

    if isinstance(error, typer.Exit):  # --help, --version, ctx.exit(code)
        return error.exit_code
    if isinstance(error, (typer.Abort, EOFError)):
        typer.echo("aborted", err=True)
        return 130
    if isinstance(error, click_exceptions.NoArgsIsHelpError):
        # `strata` or `strata lab` alone: the help is the answer (rich has printed it already).
        if error.format_message().strip():
            typer.echo(error.format_message())
        return error.exit_code
    if debug:
        import traceback

        traceback.print_exception(error)
    if isinstance(error, click_exceptions.UsageError):
        hint = f" (see {error.ctx.command_path} --help)" if error.ctx is not None else ""
        typer.echo(f"error: {_one_line(error.format_message())}{hint}", err=True)
        return 2
    if isinstance(error, click_exceptions.ClickException):
        typer.echo(f"error: {_one_line(error.format_message())}", err=True)
        return error.exit_code
    if isinstance(error, DeepstrataError):
        typer.echo(f"{error.label}{error}", err=True)
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        return 130
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    typer.echo(f"error: {type(error).__name__}: {first} (run again with --debug for the traceback)", err=True)
    return 1


def _one_line(message: str) -> str:
    return " ".join(message.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
