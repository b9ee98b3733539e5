"""``ssl evaluate``, ``ssl embed`` and ``ssl export``: using a pretrained backbone.

Only typer and rich load with this module (``ssl --help`` stays fast); torch loads inside
the commands. The shared helpers of ``ssl_core.cli`` are imported there too, as that module
imports this one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from ssl_core.eval.results import EvaluationResult, Scores, SkippedFile

RUN_HELP = (
    "A run directory written by `ssl pretrain`, a checkpoint (.ckpt) from its checkpoints/, "
    "or an exported backbone (.pt) from its exported_models/."
)
CHECKPOINT_HELP = "Which weights of a run directory: last or best (default last)."
ACCELERATOR_HELP = "auto, cpu or cuda."
PRECISION_HELP = "auto (bf16 on a CUDA device with bf16, else float32), 32-true or bf16-mixed."


def register(app: typer.Typer) -> None:
    """Add the three commands to ``app``."""
    app.command("evaluate")(evaluate_command)
    app.command("embed")(embed_command)
    app.command("export")(export_command)


def evaluate_command(
    run: str = typer.Argument(..., metavar="RUN", help=RUN_HELP, show_default=False),
    train_data: str = typer.Option(
        ...,
        "--train-data",
        help="Labelled images: one subfolder per class. The kNN bank and the linear probe's "
        "training set.",
        show_default=False,
    ),
    val_data: str = typer.Option(
        None,
        "--val-data",
        help="Labelled images to score on, the same class folders. Default: a seeded, "
        "stratified --val-fraction of --train-data.",
        show_default=False,
    ),
    k: int = typer.Option(20, "--k", help="Neighbours of the weighted kNN."),
    temperature: float = typer.Option(
        0.1, "--temperature", help="kNN vote weight exp(similarity / temperature)."
    ),
    checkpoint: str = typer.Option(None, "--checkpoint", help=CHECKPOINT_HELP, show_default=False),
    val_fraction: float = typer.Option(
        0.2, "--val-fraction", help="Share of each class held out when --val-data is not given."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the held-out split."),
    batch_size: int = typer.Option(128, "--batch-size", help="Images per forward pass."),
    accelerator: str = typer.Option("auto", "--accelerator", help=ACCELERATOR_HELP),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON instead."),
) -> None:
    """Is the pretrained backbone better than random init? kNN and linear-probe accuracy.

    Both scores are computed for the pretrained backbone and for the same architecture at
    random init (the run's starting weights), on the same images.
    """
    from ssl_core.cli import err, out, user_errors
    from ssl_core.use import evaluate

    with user_errors():
        result = evaluate(
            run,
            train_data,
            val_data,
            checkpoint=checkpoint,  # type: ignore[arg-type]  # checked by evaluate
            k=k,
            temperature=temperature,
            val_fraction=val_fraction,
            seed=seed,
            batch_size=batch_size,
            accelerator=accelerator,  # type: ignore[arg-type]
            precision=precision,  # type: ignore[arg-type]
            progress=not as_json,
        )
    warn_skipped(result.skipped, err())
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return
    out().print(evaluation_table(result))
    out().print(escape(evaluation_footer(result)), soft_wrap=True)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}"


def evaluation_table(result: EvaluationResult) -> Table:
    def cells(scores: Scores, show: Callable[[float | None], str]) -> list[str]:
        values = (scores.knn_top1, scores.knn_top5, scores.linear_top1, scores.linear_top5)
        return [show(v) for v in values]

    table = Table(
        "",
        "kNN top-1",
        "kNN top-5",
        "linear top-1",
        "linear top-5",
        title=escape(f"{result.method} on {result.model}: {result.weights}"),
        title_justify="left",
    )
    table.add_row("random init", *cells(result.random_init, _percent))
    table.add_row("pretrained", *cells(result.pretrained, _percent), style="bold")
    table.add_row("gain (points)", *cells(result.gain, _points))
    return table


def evaluation_footer(result: EvaluationResult) -> str:
    height, width = result.image_size
    top5 = "" if len(result.classes) > 5 else " (top-5: n/a with 5 classes or fewer)"
    return (
        f"{len(result.classes)} classes{top5}; {result.train_images} training and "
        f"{result.val_images} held-out images ({result.split}); kNN k={result.k}, "
        f"T={result.temperature}; {height}×{width} px; {result.device}, {result.precision}; "
        f"{result.seconds:.1f} s."
    )


def warn_skipped(skipped: list[SkippedFile], console: Console, limit: int = 5) -> None:
    if not skipped:
        return
    shown = "; ".join(f"{s.path} ({s.reason})" for s in skipped[:limit])
    more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
    message = f"Skipped {len(skipped)} unreadable image file(s): {shown}{more}."
    console.print(f"[yellow]Warning:[/yellow] {escape(message)}", soft_wrap=True)


def embed_command(
    run: str = typer.Argument(..., metavar="RUN", help=RUN_HELP, show_default=False),
    data: str = typer.Option(
        ..., "--data", help="Image folder (scanned recursively) or one image.", show_default=False
    ),
    out_file: str = typer.Option(
        ...,
        "--out",
        help="Output file; its suffix chooses the format: .npy (+ .paths.txt beside it), .csv "
        "or .parquet (needs pyarrow).",
        show_default=False,
    ),
    checkpoint: str = typer.Option(None, "--checkpoint", help=CHECKPOINT_HELP, show_default=False),
    batch_size: int = typer.Option(128, "--batch-size", help="Images per forward pass."),
    accelerator: str = typer.Option("auto", "--accelerator", help=ACCELERATOR_HELP),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
) -> None:
    """Write one embedding per image, with its path relative to --data.

    Images are resized and centre-cropped to the run's image size and normalised as in
    training; unreadable files are skipped and counted.
    """
    from ssl_core.cli import err, out, user_errors
    from ssl_core.use import embed

    with user_errors():
        result = embed(
            run,
            data,
            out_file,
            checkpoint=checkpoint,  # type: ignore[arg-type]
            batch_size=batch_size,
            accelerator=accelerator,  # type: ignore[arg-type]
            precision=precision,  # type: ignore[arg-type]
            overwrite=overwrite,
        )
    warn_skipped(result.skipped, err())
    paths = f" (paths in {result.paths_file})" if result.paths_file else ""
    out().print(
        escape(
            f"Wrote {result.images} embeddings of dimension {result.dim} to {result.out}"
            f"{paths}: {result.images_per_second:.0f} images/s on {result.device} "
            f"({result.precision})."
        ),
        soft_wrap=True,
    )


def export_command(
    run: str = typer.Argument(..., metavar="RUN", help=RUN_HELP, show_default=False),
    format: str = typer.Option(
        "state_dict",
        "--format",
        help="state_dict (the library's own format, as the run writes it), torchscript or "
        "onnx (normalised images N×3×H×W to features N×D, any N).",
    ),
    out_file: str = typer.Option(..., "--out", help="Output file.", show_default=False),
    checkpoint: str = typer.Option(None, "--checkpoint", help=CHECKPOINT_HELP, show_default=False),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
) -> None:
    """Export the pretrained backbone as a state_dict, TorchScript or ONNX.

    TorchScript and ONNX files are loaded again and compared with the model on a batch (ONNX
    with onnxruntime, when installed: pip install 'ssl-core[onnx]').
    """
    from ssl_core.cli import out, user_errors
    from ssl_core.use import export

    with user_errors():
        result = export(
            run,
            out_file,
            format,  # type: ignore[arg-type]
            checkpoint=checkpoint,  # type: ignore[arg-type]
            overwrite=overwrite,
        )
    difference = (
        f", max difference {result.max_abs_difference:.2g}"
        if result.max_abs_difference is not None
        else ""
    )
    out().print(
        escape(
            f"Exported {result.weights} as {result.format} to {result.out}. Check: "
            f"{result.checked}{difference}."
        ),
        soft_wrap=True,
    )
