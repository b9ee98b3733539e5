"""The ``ssl`` command line. Listing and help never import torch; ``pretrain`` does, late."""

from __future__ import annotations

import dataclasses
import inspect
import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand

import ssl_core.cli_use
from ssl_core import cli_options, cli_plot
from ssl_core.args import get_dotted, merge, parse_key_values, same_value
from ssl_core.cli_tables import ArgumentTable, listing_table
from ssl_core.errors import ConfigError, Interrupted, SSLCoreError
from ssl_core.plugins import ALLOWED_ENV, BLOCKED_ENV, PluginInfo, PluginWarning, host
from ssl_core.pretrain_args import PretrainArgs
from ssl_core.provenance import ProvenanceWarning

app = typer.Typer(
    name="ssl",
    help="Self-supervised pretraining of vision backbones. Methods, backbones and transforms "
    "come from plugins; `ssl plugins` shows what is installed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
methods_app = typer.Typer(help="List and describe pretraining methods.", no_args_is_help=True)
models_app = typer.Typer(help="List backbone models.", no_args_is_help=True)
transforms_app = typer.Typer(help="List and describe view transforms.", no_args_is_help=True)
app.add_typer(methods_app, name="methods")
app.add_typer(models_app, name="models")
app.add_typer(transforms_app, name="transforms")


def out() -> Console:
    return Console(highlight=False)


def err() -> Console:
    return Console(stderr=True, highlight=False)


@contextmanager
def user_errors() -> Iterator[None]:
    """A user's mistake ends in one clear paragraph and exit code 2, not a traceback."""
    try:
        yield
    except Interrupted as exc:
        err().print(f"[bold yellow]{escape(str(exc))}[/bold yellow]", soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except SSLCoreError as exc:
        err().print(f"[bold red]Error:[/bold red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        # A second Ctrl-C, or one before training started: no checkpoint was written now.
        err().print("Stopped at once; the last checkpoint written, if any, is kept.")
        raise typer.Exit(130) from None


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    if issubclass(category, (PluginWarning, ProvenanceWarning)):
        err().print(f"[yellow]Warning:[/yellow] {escape(str(message))}", soft_wrap=True)
    else:
        _default_showwarning(message, category, *args, **kwargs)


_default_showwarning = warnings.showwarning


def _print_version(value: bool) -> None:
    if value:
        from ssl_core import __version__

        out().print(f"ssl-core {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Show the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    warnings.showwarning = _show_warning


# --- methods, transforms, models, plugins -------------------------------------------------


def print_listing(
    kind: str,
    names: list[str],
    entries: dict[str, tuple[str, Any]],
    conflicts: dict[str, list[str]],
) -> None:
    """One row per registered name: the plugin that registered it and its description; a
    name two plugins register shows once, marked."""
    table = listing_table(kind, "Plugin", "Description")
    for name in names:
        if name in entries:
            plugin, cls = entries[name]
            table.add_row(name, escape(plugin), escape(cls.description))
        else:
            plugins = escape(", ".join(conflicts[name]))
            table.add_row(
                name,
                f"[red]conflict[/red]: {plugins}",
                "Registered by more than one plugin: unusable until one is blocked "
                "(`ssl plugins`).",
            )
    out().print(table)


def args_table(title: str, rows: list[tuple[str, ...]]) -> ArgumentTable:
    """Keys are shown whole at any width: users type them into --method-args and friends."""
    return ArgumentTable(title, rows)


@methods_app.command("list")
def methods_list(
    filter: str = typer.Argument("", help="fnmatch pattern or substring, e.g. 'sim*'."),
) -> None:
    """List the installed pretraining methods."""
    with user_errors():
        registry = host.registry
        print_listing(
            "Method", registry.list_methods(filter), registry.methods, registry.conflicts["method"]
        )


@methods_app.command("show")
def methods_show(name: str = typer.Argument(..., help="Method name, e.g. simclr.")) -> None:
    """Show a method's arguments, transform arguments and optimiser defaults."""
    with user_errors():
        print_method_help(name, out())


def print_method_help(name: str, console: Console) -> None:
    from ssl_core.config import method_transform_defaults
    from ssl_core.docs import schema_rows
    from ssl_core.optimizer_args import OptimizerArgs

    method_cls = host.registry.get_method(name)
    transform_cls, transform_defaults = method_transform_defaults(method_cls)
    console.print(f"[bold]{name}[/bold]: {escape(method_cls.description)}", soft_wrap=True)
    console.print(f"Default epochs: {method_cls.default_epochs}")
    sections = [
        ("Method arguments (--method-args KEY=VALUE)", schema_rows(method_cls.args_model)),
        (
            f"Transform '{transform_cls.name}' arguments (--transform-args KEY=VALUE)",
            schema_rows(transform_cls.args_model, transform_defaults),
        ),
        (
            "Optimiser defaults (--optim-args KEY=VALUE)",
            schema_rows(OptimizerArgs, method_cls.default_optimizer),
        ),
    ]
    for title, rows in sections:
        console.print(args_table(title, rows))


@transforms_app.command("list")
def transforms_list(filter: str = typer.Argument("", help="fnmatch pattern or substring.")) -> None:
    """List the installed view transforms."""
    with user_errors():
        registry = host.registry
        print_listing(
            "Transform",
            registry.list_transforms(filter),
            registry.transforms,
            registry.conflicts["transform"],
        )


@transforms_app.command("show")
def transforms_show(name: str = typer.Argument(..., help="Transform name.")) -> None:
    """Show a transform's arguments and defaults."""
    from ssl_core.docs import schema_rows

    with user_errors():
        cls = host.registry.get_transform(name)
        out().print(args_table(escape(f"{name}: {cls.description}"), schema_rows(cls.args_model)))


@models_app.command("list")
def models_list(
    filter: str = typer.Argument(
        "", help="fnmatch pattern or substring, e.g. 'torchvision/resnet*' or 'convnext'."
    ),
) -> None:
    """List backbone names usable as --model (one per line)."""
    with user_errors():
        names = host.registry.list_models(filter)
        if not names:
            raise_user(f"No model matches '{filter}'. Try `ssl models list` without a filter.")
        console = out()
        for name in names:
            console.print(name, soft_wrap=True)


@app.command("plugins")
def plugins() -> None:
    """Show the installed plugins, their versions and what each registers."""
    with user_errors():
        host.registry  # loads every plugin and records what it registers  # noqa: B018
        table = listing_table("Plugin", "Distribution", "Version", "Status", "Registers")
        for info in sorted(host.plugins.values(), key=lambda i: i.name):
            registers = "; ".join(
                f"{kind}: {', '.join(names)}" for kind, names in sorted(info.registers.items())
            )
            table.add_row(
                info.name, info.distribution, info.version, plugin_status(info), escape(registers)
            )
        out().print(table)


def plugin_status(info: PluginInfo) -> str:
    """The Status cell: the word, coloured, and why where there is a reason."""
    if info.status == "broken":
        return f"[red]broken[/red]: {escape(info.error)}"
    if info.conflicts:  # a broken plugin's conflicts do not matter: it registers nothing
        return f"[red]conflict[/red]: {escape('; '.join(info.conflicts))}"
    if info.status == "blocked":
        return f"[yellow]blocked[/yellow] ({BLOCKED_ENV})"
    if info.status == "not allowed":
        return f"[yellow]not allowed[/yellow] (not in {ALLOWED_ENV})"
    return "[green]loaded[/green]"


@app.command("docs")
def docs(
    out_dir: Path = typer.Option(Path("docs"), "--out", help="Docs directory to write into."),
    check: bool = typer.Option(
        False, "--check", help="Write nothing; exit 1 if the pages are stale."
    ),
    plugin: str = typer.Option(
        None,
        "--plugin",
        help="Only this plugin's pages (its methods, or its backbone provider's models).",
    ),
) -> None:
    """Generate the argument pages of every installed method, a model list per backbone
    provider, and the CLI reference."""
    from ssl_core import docs as docs_module

    with user_errors():
        pages = docs_module.generate(plugin)
        if check:
            stale = docs_module.stale(out_dir, pages)
            for path in stale:
                err().print(f"stale: {path}")
            if stale:
                command = f"ssl docs --plugin {plugin}" if plugin else "ssl docs"
                err().print(f"Run `{command}` to regenerate.")
                raise typer.Exit(1)
            out().print("Generated docs are up to date.")
            return
        for path in docs_module.write(out_dir, pages):
            out().print(f"wrote {path}")


ssl_core.cli_use.register(app)  # evaluate, embed, export


# --- pretrain ------------------------------------------------------------------------------


def method_from_argv(args: list[str]) -> str | None:
    """The method named on a command line, before click parses it (for --help)."""
    for i, arg in enumerate(args):
        if arg == "--method" and i + 1 < len(args):
            return args[i + 1]
        for prefix in ("--method=", "method="):
            if arg.startswith(prefix):
                return arg[len(prefix) :]
    return None


class PretrainCommand(TyperCommand):
    """Adds the chosen method's own arguments below the common options in ``--help``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta["ssl_method"] = method_from_argv(args)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        super().format_help(ctx, formatter)
        name = ctx.meta.get("ssl_method") or PretrainArgs.model_fields["method"].default
        console = out()
        console.print()
        try:
            print_method_help(name, console)
        except SSLCoreError as exc:
            console.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)


def raise_user(message: str) -> None:
    err().print(f"[bold red]Error:[/bold red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


PRETRAIN_OPTIONS = cli_options.schema_options(PretrainArgs)


def pretrain_command(ctx: typer.Context, pairs: list[str] | None, **options: Any) -> None:
    """Pretrain a backbone on a folder of images.

    Options and KEY=VALUE pairs can be mixed; `ssl pretrain --method NAME --help` lists that
    method's arguments.
    """
    with user_errors():
        values: dict[str, Any] = parse_key_values(pairs or [], "KEY=VALUE")
        given = cli_options.given_values(ctx, PRETRAIN_OPTIONS, options)
        for option in PRETRAIN_OPTIONS:
            if option.name not in given:
                continue
            value = given[option.name]
            if option.kind == "key_values":
                flags = parse_key_values(value, option.flag)
                _agree_nested(option.flag, option.name, values.get(option.name), flags)
                values[option.name] = merge(values.get(option.name) or {}, flags)
            else:
                _agree(option.name, values.get(option.name), value)
                values[option.name] = value
        missing = [
            cli_options.flag_name(name)
            for name, field in PretrainArgs.model_fields.items()
            if field.is_required() and not values.get(name)
        ]
        if missing:
            raise_user(
                "Missing "
                + ", ".join(missing)
                + ". Example: ssl pretrain --out out/run --data my_images "
                "--model torchvision/resnet18 --method simclr"
            )
        from ssl_core import config

        resolved = config.resolve(values, from_strings=True)
        # The arguments as typed, for the resume command an interrupted run prints.
        command_line = tuple(sys.argv[1:])
        run_pretraining(dataclasses.replace(resolved, command_line=command_line))


# Typer builds the options from this signature: one per PretrainArgs field.
pretrain_command.__signature__ = cli_options.signature(  # type: ignore[attr-defined]
    PretrainArgs,
    leading=[
        inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        inspect.Parameter(
            "pairs",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=typer.Argument(
                None,
                metavar="[KEY=VALUE]...",
                help="LightlyTrain-style settings, e.g. out=run data=imgs "
                "method_args.temperature=0.2.",
                show_default=False,
            ),
            annotation=list[str],
        ),
    ],
)
app.command(
    "pretrain",
    cls=PretrainCommand,
    context_settings={"help_option_names": ["--help", "-h"]},
)(pretrain_command)


def _agree(key: str, pair: Any, value: Any) -> None:
    """A setting given as an option and as KEY=VALUE must say the same: which one should
    win is a guess, and a wrong guess trains the wrong run."""
    if pair is None or same_value(pair, value):
        return
    option = cli_options.flag_name(key)
    if value is True:
        spelt = option
    elif value is False:
        spelt = f"--no-{option[2:]}"
    elif isinstance(value, list):
        spelt = " ".join(f"{option} {item}" for item in value)
    else:
        spelt = f"{option} {value}"
    raise ConfigError(f"{spelt} and {key}={pair} disagree: give it once.")


def _agree_nested(flag: str, key: str, pairs: Any, flags: dict[str, Any], path: str = "") -> None:
    """The same for ``--method-args a.b=1`` and ``method_args.a.b=2``."""
    for name, value in flags.items():
        dotted = f"{path}{name}"
        if isinstance(value, dict):
            _agree_nested(flag, key, pairs, value, f"{dotted}.")
            continue
        pair = get_dotted(pairs, dotted) if isinstance(pairs, dict) else None
        if pair is not None and not same_value(pair, value):
            raise ConfigError(
                f"{flag} {dotted}={value} and {key}.{dotted}={pair} disagree: give it once."
            )


def run_pretraining(resolved: Any) -> None:
    """Hand the validated configuration to the training engine and show the summary."""
    from ssl_core.pretraining import run

    result = run(resolved)
    if result.rank != 0:
        return
    table = Table(title="Pretraining finished", show_header=False, title_justify="left")
    for key, value in (
        ("Exported backbone", str(result.exported_model)),
        ("Checkpoint", str(result.checkpoint)),
        ("Images", f"{result.images} ({result.skipped_images} skipped)"),
        ("Epochs / steps", f"{result.epochs} / {result.steps}"),
        ("Final loss", f"{result.final_loss:.4f}"),
        (
            "Throughput",
            f"{result.images_per_second:.0f} images/s ({result.device}, {result.precision})",
        ),
        ("Time", f"{result.seconds:.0f} s"),
    ):
        table.add_row(key, escape(value))
    out().print(table)


cli_plot.register(app)


def main() -> None:
    warnings.showwarning = _show_warning
    try:
        app()
    finally:
        # The command is over and has said why; a Ctrl-C pressed again while the process
        # exits (a stopped run's user often presses twice) would only print a traceback
        # from the interpreter's shutdown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
