"""`strata <tool> RUN_DIR [INPUT ...] [--arg value ...] [--set arg=value] [--json]`: one command per registered tool.

Problem: a command written by hand for every tool repeats the same parsing, error handling and
printing, and a new tool is unusable from the shell until someone writes its command.
Idea: the commands are made from the catalogue (read from the source, so `strata --help` imports
nothing heavy); each command's options are made from the tool's signature only when that command
runs or shows its help, and values are YAML-parsed like recipe overrides (`--batch-sizes 1,32`).
A tool that registers `positional="<param>"` (a `list[str]` argument, e.g. `strata explain RUN
a.png b.png`) takes the words after RUN_DIR that are not options as that argument, verbatim;
every other tool refuses stray words as before.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

RESERVED = frozenset({"set", "json", "help", "debug"})  # the command's own options


class ToolCommand(TyperCommand):
    """A typer command whose help lists the tool's options, read from its signature on first use."""

    tool_name: str = ""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        hints = _tool_hints(self.tool_name)
        positional = positional_parameter(self.tool_name)
        params = [p for p in _parameters(self.tool_name) if p.name != positional]
        lines = [f"{_option_form(p, hints)}  {_option_help(p, hints)}" for p in params]
        if positional:
            words = positional.upper()
            lines.insert(0, f"{words}...  words after RUN_DIR that are not options (or --{positional.replace('_', '-')} a,b); {_type_words(hints.get(positional))}.")
        doc = inspect.getdoc(_tool_object(self.tool_name)) or ""
        details = doc.split("\n\n", 1)[1] if "\n\n" in doc else ""
        text = "\n\n".join(["Tool options (after RUN_DIR):", *lines, *([details] if details else [])])
        self.epilog = _escape_markup(text) if self.rich_markup_mode else text  # `list[int]` is not a markup tag
        super().format_help(ctx, formatter)


def register(app: typer.Typer) -> None:
    from deepstrata.registry import catalog

    taken = {(c.name or (c.callback.__name__ if c.callback else "")).replace("_", "-") for c in app.registered_commands}
    for name, entry in sorted(catalog()["tool"].items()):
        command_name = name.replace("_", "-")
        if command_name in taken:
            raise ValueError(f"tool '{name}' ({entry.module}) has the name of the existing command `strata {command_name}`; rename the tool")
        cls = type(f"ToolCommand_{name}", (ToolCommand,), {"tool_name": name})
        help_text = (
            f"{entry.summary}\n\nA registered tool (`{entry.module}`). Its arguments are the options below, "
            "or --set NAME=VALUE; values are YAML (3, true, [1, 2]); lists also as 1,2,3."
        )
        app.command(
            command_name,
            cls=cls,
            # The tool's own options (--batch-sizes 1,32) are read from the signature when it runs.
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            help=help_text,
            short_help=entry.summary,
            rich_help_panel="Tools (act on a finished run)",
        )(_make_command(name))


def _make_command(name: str) -> Any:
    def command(
        ctx: typer.Context,
        run_dir: Path = typer.Argument(..., help="A finished run directory (runs/<recipe>/<timestamp>)."),
        set_: list[str] = typer.Option([], "--set", "-s", help="A tool argument: --set repeats=10 (repeatable; YAML values)."),
        as_json: bool = typer.Option(False, "--json", help='End with one JSON line: {"run_dir": ..., "metrics": {...}}.'),
    ) -> None:
        if str(run_dir).startswith("-"):  # an option where RUN_DIR belongs (unknown options land here too)
            from deepstrata.errors import UserError

            cmd = f"strata {name.replace('_', '-')}"
            raise UserError(f"'{run_dir}' stands where RUN_DIR belongs: give the run directory first, then options: {cmd} RUN_DIR --option value (see {cmd} --help)")
        run_tool(name, run_dir, options=parse_options(name, list(ctx.args)), overrides=set_, as_json=as_json)

    command.__name__ = name
    return command


def run_tool(name: str, run_dir: Path, *, options: dict[str, str | list[str]], overrides: Sequence[str], as_json: bool) -> None:
    """Parse the arguments, apply the tool (phases on stderr), print its main table and where it wrote."""
    from deepstrata import api
    from deepstrata.config import apply_override
    from deepstrata.run.run import Run
    from deepstrata.tools.base import phases_to

    sequences = _sequence_params(name)
    raw: dict[str, Any] = {}
    for item in overrides:
        apply_override(raw, item)
    for key, value in list(raw.items()):
        if key in sequences and isinstance(value, str):
            raw[key] = _split_list(value)
    for key, text in options.items():
        raw[key] = list(text) if isinstance(text, list) else _parse_value(text, sequence=key in sequences)  # positional words: verbatim
    if not Path(run_dir).is_dir() and any(Path(str(v)).is_dir() for v in options.values()):
        from deepstrata.errors import UserError

        raise UserError(f"'{run_dir}' is not a run directory; give RUN_DIR first: strata {name.replace('_', '-')} RUN_DIR --option value")
    run = Run.open(run_dir)
    with phases_to(lambda message: typer.echo(message, err=True)):
        result = api.apply(name, run, **raw)
    _print_outcome(result)
    if as_json:
        typer.echo(result.to_json())


# --------------------------------------------------------------------------------------
# Options from the signature.
# --------------------------------------------------------------------------------------


def _escape_markup(text: str) -> str:
    """`list[int]` would be read as a rich markup tag and vanish from the help."""
    from rich.markup import escape

    return escape(text)


def _tool_object(name: str) -> Any:
    from deepstrata.registry import REGISTRIES

    return REGISTRIES["tool"].get(name)


def parse_options(name: str, args: list[str]) -> dict[str, str | list[str]]:
    """`--batch-sizes 1,32 --repeats=3 --flag --no-other` -> {"batch_sizes": "1,32", "repeats": "3", ...} (raw text).

    Unknown options raise a one-line ConfigError naming the closest option. Stray words do too,
    unless the tool registered `positional="<param>"`: then they (and every word after `--`) are
    that parameter's list, verbatim (file names are not YAML).
    """
    from deepstrata.errors import ConfigError, did_you_mean

    positional = positional_parameter(name)
    words: list[str] = []
    params = {p.name: p for p in _parameters(name)}
    hints = _tool_hints(name)
    flags = {n for n, p in params.items() if hints.get(n, p.annotation) in (bool, "bool")}
    known = sorted([f"--{n.replace('_', '-')}" for n in params] + [f"--no-{n.replace('_', '-')}" for n in sorted(flags)] + ["--set", "--json"])
    out: dict[str, str | list[str]] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if positional and token == "--":
            words.extend(args[i + 1 :])
            break
        if positional and not token.startswith("--"):
            words.append(token)
            i += 1
            continue
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"{name}: unexpected argument '{token}'; give RUN_DIR once, then options: strata {name.replace('_', '-')} RUN_DIR --option value")
        option, has_value, value = token.partition("=")
        key = option[2:].replace("-", "_")
        if key.startswith("no_") and key[3:] in flags and not has_value:
            out[key[3:]] = "false"
        elif key in flags and not has_value:
            out[key] = "true"
        elif key in params:
            if not has_value:
                if i + 1 >= len(args):
                    raise ConfigError(f"{name}: option '{option}' needs a value, e.g. {option} {_show(params[key].default)}")
                i += 1
                value = args[i]
            out[key] = value
        else:
            raise ConfigError(
                f"{name}: unknown option '{option}'{did_you_mean(option, known)} "
                f"(options: {', '.join(known)}; `strata {name.replace('_', '-')} --help` describes them)"
            )
        i += 1
    if words:
        if positional in out:
            flag = f"--{positional.replace('_', '-')}"
            raise ConfigError(f"{name}: {positional} given twice, as words after RUN_DIR ({' '.join(words)}) and as {flag}; give one of them")
        out[positional] = words
    return out


def positional_parameter(name: str) -> str | None:
    """The parameter the tool takes from words after RUN_DIR (its registration's `positional=`), or None.

    Raises TypeError (a programming error) unless it names one of the tool's list arguments.
    """
    from deepstrata.registry import REGISTRIES

    positional = REGISTRIES["tool"].meta(name).get("positional")
    if positional is None:
        return None
    hints = _tool_hints(name)
    param = next((p for p in _parameters(name) if p.name == positional), None)
    if param is None or not _is_sequence(hints.get(param.name, param.annotation)):
        raise TypeError(f"tool '{name}' registers positional={positional!r}, which must name one of its list[str] arguments")
    return str(positional)


def _parameters(name: str) -> list[inspect.Parameter]:
    from deepstrata.tools.base import tool_parameters

    params = tool_parameters(name)
    for p in params:
        if p.name in RESERVED:
            raise TypeError(f"tool '{name}': argument '{p.name}' clashes with the command's own --{p.name}; rename it")
    return params


def _tool_hints(name: str) -> dict[str, Any]:
    from deepstrata.tools.base import tool_function

    return _hints(tool_function(name))


def _option_form(p: inspect.Parameter, hints: dict[str, Any]) -> str:
    """`--name VALUE`, or `--flag / --no-flag` for a bool (as parse_options reads them)."""
    option = p.name.replace("_", "-")
    if hints.get(p.name, p.annotation) in (bool, "bool"):
        return f"--{option} / --no-{option}"
    return f"--{option} VALUE"


def _option_help(p: inspect.Parameter, hints: dict[str, Any]) -> str:
    return f"{_type_words(hints.get(p.name, p.annotation))} (default: {_show(p.default)})."


def _hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to the raw ones
        return {}


def _sequence_params(name: str) -> set[str]:
    hints = _tool_hints(name)
    return {p.name for p in _parameters(name) if _is_sequence(hints.get(p.name, p.annotation))}


def _is_sequence(annotation: Any) -> bool:
    """list[int], tuple[int, ...], Sequence[str], or one of them | None."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence(a) for a in typing.get_args(annotation))
    return origin in (list, tuple, set, frozenset) or (inspect.isclass(origin) and issubclass(origin, Sequence) and origin is not str)


def _parse_value(text: str, *, sequence: bool) -> Any:
    """A command-line value as YAML (`3`, `true`, `[1, 2]`); `1,32` is a list where a list is expected."""
    import yaml

    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    if sequence and not isinstance(value, list):
        return _split_list(text)
    return value


def _split_list(text: str) -> list[Any]:
    import yaml

    out = []
    for part in str(text).split(","):
        if part.strip():
            try:
                out.append(yaml.safe_load(part))
            except yaml.YAMLError:
                out.append(part.strip())
    return out


def _type_words(annotation: Any) -> str:
    if typing.get_origin(annotation) is None and isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


# --------------------------------------------------------------------------------------
# Output.
# --------------------------------------------------------------------------------------


def _print_outcome(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    metrics = Table(title=f"{result.tool}: metrics")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for key, value in result.metrics.items():
        metrics.add_row(key, _fmt(value))
    console.print(metrics)
    if result.tables:
        title, rows = next(iter(result.tables.items()))
        if rows:
            table = Table(title=f"{result.tool}: {title.replace('_', ' ')}")
            columns = list(dict.fromkeys(k for row in rows for k in row))
            for column in columns:
                table.add_column(column.replace("_", " "), justify="right")
            for row in rows:
                table.add_row(*(_fmt(row.get(c, "")) for c in columns))
            console.print(table)
    if result.summary:
        typer.echo(result.summary)
    if result.kind == "analysis":
        typer.echo(f"result: {result.result_dir}")
    else:
        typer.echo(f"run: {result.run_dir}")


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) >= 1e4 else f"{value:.4g}"
    return str(value)
