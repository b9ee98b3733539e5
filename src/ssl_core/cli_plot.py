"""``ssl plot OUT``: redraw a run's plots from its metrics.jsonl (``ssl_core.plots``)."""

from __future__ import annotations

from pathlib import Path

import typer


def plot_command(
    out: Path = typer.Argument(
        ...,
        metavar="OUT",
        help="A run's output directory (the --out of `ssl pretrain`).",
        show_default=False,
    ),
) -> None:
    """Draw a run's loss, learning rate and metrics as PNGs in OUT/plots.

    Works for a finished run, one still going and one that was interrupted: the rows
    written so far are drawn.
    """
    from rich.markup import escape

    from ssl_core.cli import out as console
    from ssl_core.cli import user_errors
    from ssl_core.plots import write_plots

    with user_errors():
        written = write_plots(out)
        shown = console()
        shown.print(escape(f"Wrote {len(written)} plots to {written[0].parent}:"), soft_wrap=True)
        for path in written:
            shown.print(escape(f"  {path.name}"), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("plot")(plot_command)
