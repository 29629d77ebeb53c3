"""The ``synthgen`` command line.

Every command turns ``SynthgenError`` into a one-line red message and exit code 2:
bad input never shows a traceback.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from synthgen.errors import SynthgenError

app = typer.Typer(
    name="synthgen",
    help="Generate synthetic tables, evaluate them, and run them as batch jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Report user errors in one line (exit code 2) instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SynthgenError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
            raise typer.Exit(code=2) from None

    return wrapper


def _backend(name: str):
    from synthgen.backends import BACKENDS
    from synthgen.errors import ConfigError

    key = name.lower()
    if key not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; available: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[key]


def _training_options(
    backend: str, epochs: int | None, steps: int | None, batch_size: int | None, target: str | None
) -> dict:
    """Only the options the user gave, checked against what the backend accepts."""
    from synthgen.errors import ConfigError

    params = _backend(backend)._param_names()
    given = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "target": target}
    options = {k: v for k, v in given.items() if v is not None}
    unknown = [k for k in options if k not in params]
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise ConfigError(f"backend {backend!r} does not take {flags}")
    if epochs is not None and steps is None and "steps" in params:
        options["steps"] = None  # --epochs given: it decides the length, not default steps
    return options


@app.command()
@friendly_errors
def demo(
    out_path: Path = typer.Option(Path("synthetic.csv"), "--out", help="Where to write the rows."),
    epochs: int = typer.Option(
        80, help="Training epochs (the demo is sized for ~1 min on 2 cores)."
    ),
    rows: int = typer.Option(0, help="Rows to generate (0: as many as the training split)."),
    seed: int = typer.Option(0, help="Seed for training and sampling."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
) -> None:
    """Fit TVAE on the bundled Adult data, sample, write a CSV and print its quality."""
    from pipelines.demo import run_demo
    from pipelines.tables import check_writable

    check_writable(out_path)
    run_demo(out_path, epochs=epochs, rows=rows, seed=seed, device=device, console=out)


@app.command()
@friendly_errors
def fit(
    data: Path = typer.Argument(..., help="Training table (.csv or .parquet)."),
    backend: str = typer.Option("tvae", help="Generator backend (tvae, ctgan, tabddpm, ...)."),
    out_path: Path = typer.Option(Path("model.synth"), "--out", help="Model file to write."),
    epochs: int | None = typer.Option(None, help="Training epochs (default: the backend's)."),
    steps: int | None = typer.Option(
        None, help="Optimisation steps, for backends sized in steps (tabddpm)."
    ),
    batch_size: int | None = typer.Option(
        None, help="Rows per optimisation step (default: the backend's)."
    ),
    target: str | None = typer.Option(
        None, help="Column a class-conditional backend (tabddpm) conditions on."
    ),
    seed: int = typer.Option(0, help="Seed for a reproducible model."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    schema_path: Path | None = typer.Option(
        None, "--schema", help="Schema JSON (from Schema.to_json); inferred when omitted."
    ),
) -> None:
    """Learn a table and save the model (safe format: JSON + tensors, no pickle)."""
    from pipelines.tables import read_table
    from synthgen.schema import Schema

    frame = read_table(data)
    schema = Schema.from_json(str(schema_path)) if schema_path else None
    model = _backend(backend)(
        **_training_options(backend, epochs, steps, batch_size, target), seed=seed, device=device
    )
    start = time.perf_counter()
    model.fit(frame, schema=schema)
    model.save(str(out_path))
    out.print(
        f"fitted {backend} on {len(frame):,} rows x {frame.shape[1]} columns in "
        f"{time.perf_counter() - start:.1f}s -> {out_path}"
    )


@app.command()
@friendly_errors
def sample(
    model_path: Path = typer.Argument(..., help="Model file written by 'synthgen fit'."),
    n: int = typer.Option(1000, "-n", "--rows", help="Number of rows to generate."),
    out_path: Path = typer.Option(Path("synthetic.parquet"), "--out", help=".csv or .parquet"),
    seed: int = typer.Option(0, help="Sampling seed (same seed, same rows)."),
    device: str | None = typer.Option(None, help="Override the device the model runs on."),
) -> None:
    """Generate rows from a saved model."""
    from pipelines.tables import check_writable, write_table
    from synthgen.io import load_model

    check_writable(out_path)
    model = load_model(str(model_path), device=device)
    start = time.perf_counter()
    frame = model.sample(n, seed=seed)
    write_table(frame, out_path)
    out.print(f"sampled {len(frame):,} rows in {time.perf_counter() - start:.1f}s -> {out_path}")


@app.command()
@friendly_errors
def augment(
    data: Path = typer.Argument(..., help="Real table (.csv or .parquet)."),
    model_path: Path = typer.Option(..., "--model", help="Model fitted on this kind of table."),
    target: str = typer.Option(..., help="Class column to rebalance."),
    balance: bool = typer.Option(False, "--balance", help="Top every class up to the majority."),
    counts: str | None = typer.Option(
        None, help="Exact class totals instead, e.g. '>50K=20000,<=50K=24720'."
    ),
    ratio: float | None = typer.Option(None, help="With --balance: share of the majority count."),
    out_path: Path = typer.Option(Path("augmented.parquet"), "--out", help=".csv or .parquet"),
    seed: int = typer.Option(0, help="Sampling seed."),
    indicator: str = typer.Option("is_synthetic", help="Marker column ('' to leave it out)."),
) -> None:
    """Add conditionally sampled rows of under-represented classes to a table."""
    from pipelines.tables import check_writable, read_table, write_table
    from synthgen.augment import augment as augment_frame
    from synthgen.errors import ConfigError
    from synthgen.io import load_model

    if balance == (counts is not None):
        raise ConfigError("give exactly one of --balance or --counts")
    check_writable(out_path)
    frame = read_table(data)
    model = load_model(str(model_path))
    strategy: str | dict[Any, int] = "balance"
    if counts is not None:
        strategy = _parse_counts(counts, frame.get(target))
    result = augment_frame(
        frame,
        model,
        target=target,
        strategy=strategy,
        ratio=ratio,
        indicator=indicator or None,
        seed=seed,
    )
    write_table(result, out_path)
    added = len(result) - len(frame)
    summary = result[target].value_counts().to_dict()
    out.print(f"added {added:,} synthetic rows -> {out_path}; class counts now {summary}")


def _parse_counts(text: str, column: Any) -> dict[Any, int]:
    """Parse 'a=1,b=2'; labels take the type of the column's values (e.g. ints)."""
    from synthgen.errors import ConfigError

    parsed: dict[Any, int] = {}
    labels = {str(v): v for v in column.dropna().unique()} if column is not None else {}
    for item in text.split(","):
        label, sep, value = item.rpartition("=")
        if not sep or not value.strip().isdigit():
            raise ConfigError(f"--counts item {item!r} is not of the form CLASS=ROWS")
        parsed[labels.get(label.strip(), label.strip())] = int(value)
    return parsed


def _register_commands() -> None:
    """Commands that live in their own modules register themselves here."""
    from pipelines import evaluate_cmd

    evaluate_cmd.register(app)


_register_commands()


def main() -> None:  # pragma: no cover - console entry point
    app(sys.argv[1:])
