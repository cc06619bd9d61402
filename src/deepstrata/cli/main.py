"""The `strata` command: one entry point, commands discovered from `cli/commands/`.

Problem: a CLI that imports torch to print `--help` feels broken, and one whose commands are
hard-wired in a single file must be edited by every new capability.
Idea: `main` builds a typer app from every module in `deepstrata.cli.commands` (each has a
`register(app)` and imports heavy libraries only inside its command), and turns every
`DeepstrataError` into one line on stderr with its exit code (2 for bad input). `--debug`
anywhere on the line shows the traceback instead.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from deepstrata import __version__
from deepstrata.cli import commands

HELP = "deepstrata: every idea of deep learning as a real, tested component. Recipes in, run directories out."


def build_app() -> typer.Typer:
    app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root(
        version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
        debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors (also accepted after a command)."),
    ) -> None:
        if version:
            typer.echo(f"deepstrata {__version__}")
            raise typer.Exit()

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    app = build_app()
    try:
        app(args=args, prog_name="strata", standalone_mode=False)
    except SystemExit as stop:
        return int(stop.code or 0) if isinstance(stop.code, int) else 1
    except Exception as error:  # noqa: BLE001 - the CLI's last line of defence
        return report_error(error, debug=debug)
    return 0


def report_error(error: BaseException, *, debug: bool) -> int:
    import click

    from deepstrata.errors import DeepstrataError

    if isinstance(error, click.exceptions.Exit):
        return error.exit_code
    if isinstance(error, click.exceptions.Abort):
        typer.echo("aborted", err=True)
        return 130
    if debug:
        import traceback

        traceback.print_exception(error)
    if isinstance(error, click.ClickException):
        typer.echo(f"error: {error.format_message()}", err=True)
        return 2
    if isinstance(error, DeepstrataError):
        typer.echo(f"error: {error}", err=True)
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        return 130
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    typer.echo(f"error: {type(error).__name__}: {first} (run again with --debug for the traceback)", err=True)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
