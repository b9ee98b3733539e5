"""PNG plots of a run's ``metrics.jsonl`` against the step: the loss, the learning rate,
every value a method logs (BYOL's momentum, DINO's schedules) and, when an online monitor
writes them, the ``knn_*`` accuracies. One PNG per value, for a report or a slide, and
``overview.png`` with all of them as panels, to see the run at a glance.

matplotlib is an optional extra (``pip install 'ssl-core[plots]'``) imported inside the
functions here only: ``ssl --help`` and a run without it load none of it. Figures are drawn
with matplotlib's object interface on an Agg canvas, never through pyplot, so a notebook's
or a user's chosen backend is left as it was and nothing global changes.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssl_core.errors import SSLCoreError

if TYPE_CHECKING:
    from ssl_core.train.run_dir import RunLog

PLOTS_DIR = "plots"
# Bookkeeping columns, not values worth a plot.
NOT_PLOTTED = frozenset({"step", "epoch", "time", "images_per_second"})
TITLES = {"lr": "learning rate (lr)", "knn": "kNN accuracy (knn_*)"}
INSTALL_HINT = (
    "Plots of the loss and metrics need matplotlib: pip install 'ssl-core[plots]' "
    "(then `ssl plot OUT` draws them for a finished run too)."
)


class PlotError(SSLCoreError):
    """No plots can be drawn: no metrics.jsonl, no complete row yet, or no matplotlib."""


Series = dict[str, list[tuple[int, float]]]


def read_series(metrics: Path) -> Series:
    """Each numeric column as (step, value) points sorted by step. A line that is not
    JSON (the last one of a run killed mid-write, or one being written now) is left out;
    a step written twice (by a resume) keeps its last value; NaN (written as null) is
    a gap."""
    columns: dict[str, dict[int, float]] = {}
    with metrics.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                row = json.loads(line)
                step = int(row["step"])
            except (ValueError, KeyError, TypeError):
                continue
            for key, value in row.items():
                if key in NOT_PLOTTED or isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)) and math.isfinite(value):
                    columns.setdefault(key, {})[step] = float(value)
    return {key: sorted(points.items()) for key, points in columns.items()}


def panels(series: Series) -> list[tuple[str, list[str]]]:
    """(title, columns) per figure: loss, lr, the method's values in the order it logs
    them, then every ``knn_*`` accuracy together in one panel."""
    knn = [key for key in series if key.startswith("knn_")]
    first = [key for key in ("loss", "lr") if key in series]
    rest = [key for key in series if key not in first and key not in knn]
    chosen = [(key, [key]) for key in (*first, *rest)]
    return [*chosen, ("knn", knn)] if knn else chosen


def file_name(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", title).strip("_") + ".png"


def write_plots(out: Path) -> list[Path]:
    """Draw ``out/metrics.jsonl`` into ``out/plots/``; returns the files, overview first.
    Each file is replaced whole (written aside, then renamed), so a viewer open on it
    while ``ssl plot`` redraws a running run never reads half a PNG."""
    out = Path(out)
    metrics = out / "metrics.jsonl"
    if not metrics.is_file():
        raise PlotError(
            f"'{out}' has no metrics.jsonl: give the output directory of a run "
            f"(the --out of `ssl pretrain`)."
        )
    series = read_series(metrics)
    if not series:
        raise PlotError(f"{metrics} has no complete row yet: plot again after the first steps.")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError(INSTALL_HINT) from None

    title = run_title(out)
    chosen = panels(series)
    folder = out / PLOTS_DIR
    folder.mkdir(exist_ok=True)
    written = []

    columns = min(2, len(chosen))
    rows = math.ceil(len(chosen) / columns)
    overview = Figure(figsize=(6 * columns, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(overview)
    overview.suptitle(title)
    for i, (name, keys) in enumerate(chosen):
        draw_panel(overview.add_subplot(rows, columns, i + 1), name, keys, series)
    written.append(save(overview, folder / "overview.png"))

    for name, keys in chosen:
        figure = Figure(figsize=(6.4, 3.6), layout="constrained")
        FigureCanvasAgg(figure)
        figure.suptitle(title, fontsize="medium")
        draw_panel(figure.add_subplot(), name, keys, series)
        written.append(save(figure, folder / file_name(name)))
    return written


def draw_panel(axes: Any, name: str, keys: list[str], series: Series) -> None:
    for key in keys:
        steps, values = zip(*series[key], strict=True)
        few = len(steps) <= 30  # an evaluation every few epochs: show its points
        if key == "loss" and len(steps) >= 50:
            # The raw per-step loss is noisy; a running mean over 1/25 of the run beside it.
            axes.plot(steps, values, color="C0", alpha=0.3, linewidth=0.8, label="per step")
            axes.plot(steps, running_mean(values, len(values) // 25), color="C0", label="mean")
            axes.legend(loc="upper right", fontsize="small")
        else:
            axes.plot(steps, values, marker="o" if few else None, markersize=3, label=key)
    if len(keys) > 1:
        axes.legend(fontsize="small")
    axes.set_title(TITLES.get(name, name))
    axes.set_xlabel("step")
    axes.grid(alpha=0.3)


def running_mean(values: tuple[float, ...], window: int) -> list[float]:
    """Mean of the last ``window`` values at each point (fewer at the start)."""
    means, total = [], 0.0
    for i, value in enumerate(values):
        total += value - (values[i - window] if i >= window else 0.0)
        means.append(total / min(i + 1, window))
    return means


def save(figure: Any, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        figure.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def run_title(out: Path) -> str:
    """'NAME: METHOD on MODEL' from the run's config.json, else the folder's name."""
    try:
        config = json.loads((out / "config.json").read_text(encoding="utf-8"))
        return f"{out.name}: {config['method']} on {config['model']}"
    except (OSError, ValueError, KeyError, TypeError):
        return out.name


def plot_finished_run(out: Path, log: RunLog) -> None:
    """At a run's end (rank 0): draw the plots and say where, or say once how to get them.
    A finished run never fails here: any other error is a warning."""
    try:
        written = write_plots(out)
    except PlotError as exc:
        log.info(str(exc))
    except Exception as exc:
        log.warning(f"the plots could not be drawn ({type(exc).__name__}: {exc}); the run is fine.")
    else:
        log.info(f"Plots: {written[0].parent} ({len(written)} PNGs, overview.png shows all).")
