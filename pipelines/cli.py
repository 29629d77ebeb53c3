"""The ``synthgen`` command line.

Every error, a ``SynthgenError`` from the library or a usage error (an unknown option,
``-n abc``), is printed as exactly one plain line on stderr and exits with code 2: bad
input never shows a traceback or a boxed usage message, and a script reading stderr
line by line gets one line per failure. Every ``--out`` is checked before any work
starts (its folder must exist: no command creates folders).
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer import _click
from typer.core import TyperGroup

from synthgen.errors import ConfigError, ModelFileError, SynthgenError

#: ``sample`` generates and writes this many rows at a time (bounded memory).
SAMPLE_CHUNK_ROWS = 500_000
#: Rows sampled up front to estimate the size of the output file.
PROBE_ROWS = 1_000


def one_line(message: object) -> str:
    """The message on a single line (rich would wrap it at 80 columns off a terminal)."""
    return " ".join(str(message).split())


def fail(message: object) -> None:
    """Print ``error: <message>`` as one line on stderr."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()


class OneLineErrors(TyperGroup):
    """A command group whose usage errors are one line on stderr and exit code 2.

    Typer would draw a multi-line usage box for ``-n abc`` or an unknown option; here
    click runs in non-standalone mode and its errors are printed by ``fail``. Help
    requested by ``--help`` or by no arguments goes to stdout as usual.
    """

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, *a: Any, standalone_mode: bool = True, **kw: Any
    ) -> Any:
        try:
            result = super().main(args, *a, standalone_mode=False, **kw)
        except _click.exceptions.NoArgsIsHelpError as exc:
            sys.stdout.write(exc.ctx.get_help() + "\n")
            result = 0
        except _click.exceptions.ClickException as exc:
            fail(f"{exc.format_message()} (see --help)")
            result = 2
        except typer.Abort:
            fail("aborted")
            result = 1
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    name="synthgen",
    help="Generate synthetic tables, evaluate them, and run them as batch jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,
)
out = Console()


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Report user errors in one line (exit code 2) instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SynthgenError as exc:
            fail(exc)
            raise typer.Exit(code=2) from None

    return wrapper


def _check_rows(flag: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ConfigError(f"{flag} {value} must be at least {minimum}")


def _model_file(path: Path) -> str:
    """A model path that exists and is a file (load_model says what else is wrong)."""
    if path.is_dir():
        raise ModelFileError(f"model file {str(path)!r} is a directory; give a .synth file")
    if not path.exists():
        raise ModelFileError(f"model file {str(path)!r} does not exist; check the path")
    return str(path)


def _backend(name: str):
    from synthgen.backends import BACKENDS
    from synthgen.backends.image_base import ImageGenerator

    key = name.lower()
    tables = sorted(k for k, v in BACKENDS.items() if not issubclass(v, ImageGenerator))
    if key not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; available: {', '.join(tables)}")
    if issubclass(BACKENDS[key], ImageGenerator):
        raise ConfigError(
            f"{name!r} is an image backend; `synthgen fit` learns tables ({', '.join(tables)}). "
            "Train image models with an image job (`synthgen run job.yaml` with "
            "source.images, see examples/digits_images.yaml) or from Python"
        )
    return BACKENDS[key]


def _training_options(
    backend: str, epochs: int | None, steps: int | None, batch_size: int | None, target: str | None
) -> dict:
    """Only the options the user gave, checked against what the backend accepts."""
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
    out_path: Path | None = typer.Option(
        Path("synthetic.csv"), "--out", help="Also write the exported table here."
    ),
    epochs: int | None = typer.Option(
        None, help="Training epochs (default: TabularAR's, ~1 min on 2 cores)."
    ),
    rows: int = typer.Option(
        0, help="Plain samples instead of augmentation (0: augment the minority class)."
    ),
    seed: int = typer.Option(0, help="Seed for the split, training and sampling."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    catalog_url: str | None = typer.Option(
        None, "--catalog", help="Catalog URL (default SYNTHGEN_CATALOG_URL or ./synthgen.db)"
    ),
) -> None:
    """The main job on bundled data: fit, sample, validate, evaluate, gate, export."""
    from pipelines.demo import run_demo
    from pipelines.tables import check_writable

    _check_rows("--rows", rows, 0)
    if epochs is not None:
        _check_rows("--epochs", epochs, 1)
    if out_path is not None:
        check_writable(out_path)
    result = run_demo(
        out_path, epochs=epochs, rows=rows, seed=seed, device=device, catalog_url=catalog_url,
        console=out,
    )  # fmt: skip
    if result.exit_code:
        raise typer.Exit(code=result.exit_code)


@app.command()
@friendly_errors
def fit(
    data: Path | None = typer.Argument(
        None, help="Training table (.csv or .parquet); or --from a catalog dataset."
    ),
    backend: str = typer.Option(
        "tabular_ar",
        help="Generator backend (tabular_ar, tvae, ctgan, tabddpm; aim, mst: marginal-based "
        "DP, need --epsilon and the 'marginals' extra).",
    ),
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
    epsilon: float | None = typer.Option(
        None,
        help="Train with differential privacy at this total epsilon (preprocessing included).",
    ),
    delta: float | None = typer.Option(
        None, help="DP delta (default 1/n^1.5); only with --epsilon."
    ),
    preprocessing_epsilon: float | None = typer.Option(
        None,
        help="Share of --epsilon for DP column statistics (default: min(epsilon/2, 1) when "
        "the schema declares no public domain for some column, else 0).",
    ),
    source: str | None = typer.Option(
        None,
        "--from",
        help="Train on this catalog dataset (NAME or NAME@VERSION) and register the model; "
        "with --epsilon its privacy budget is charged (refused before training if short).",
    ),
    catalog_url: str | None = typer.Option(
        None,
        "--catalog",
        help="Catalog URL for --from (default SYNTHGEN_CATALOG_URL or ./synthgen.db)",
    ),
) -> None:
    """Learn a table and save the model (safe format: JSON + tensors, no pickle).

    With --epsilon the model is trained with DP-SGD and the accountant's total epsilon
    and delta are printed and saved in the model file.
    """
    from pipelines.tables import check_input, read_table
    from synthgen.paths import check_writable
    from synthgen.schema import Schema

    check_writable(out_path, what="model")  # before training: a failed save loses the model
    if (data is None) == (source is None):
        raise ConfigError(
            "give the training table as DATA or a catalog dataset with --from, one of them"
        )
    if catalog_url is not None and source is None:
        raise ConfigError("--catalog is only used with --from")
    if schema_path:
        check_input(schema_path, "schema file")
    schema = Schema.from_json(str(schema_path)) if schema_path else None
    dp = None
    if epsilon is not None:
        from privacy.accounting import DPConfig

        dp = DPConfig(epsilon=epsilon, delta=delta, preprocessing_epsilon=preprocessing_epsilon)
    elif delta is not None or preprocessing_epsilon is not None:
        raise ConfigError("--delta and --preprocessing-epsilon need --epsilon")
    options = _training_options(backend, epochs, steps, batch_size, target)
    if dp is not None:
        options["dp"] = dp
        if backend == "ctgan":
            options["pac"] = 1  # DP-SGD clips per row: no packs of real rows
    model = _backend(backend)(**options, seed=seed, device=device)
    start = time.perf_counter()
    if source is not None:
        frame = _fit_from_catalog(model, source, catalog_url, schema, out_path)
    else:
        frame = read_table(data)
        model.fit(frame, schema=schema)
        model.save(str(out_path))
    out.print(
        f"fitted {backend} on {len(frame):,} rows x {frame.shape[1]} columns in "
        f"{time.perf_counter() - start:.1f}s -> {out_path}"
    )
    if model.privacy_spent is not None:
        out.print(f"differential privacy: {model.privacy_spent}")


def _fit_from_catalog(model: Any, source: str, url: str | None, schema: Any, out_path: Path):
    """Fit on a catalog dataset and register the model (DP: charged to the source's budget)."""
    from pipelines.catalog import Catalog, parse_ref

    name, _ = parse_ref(source)
    with Catalog(url) as catalog:
        frame = catalog.read(source)
        if model.dp is not None:
            model_id = catalog.train_private(
                name, model, frame, model_path=str(out_path), schema=schema
            )
            left = catalog.budget(name)["remaining_epsilon"]
            out.print(f"catalog: model #{model_id}, charged to {name}; epsilon left {left:.4g}")
        else:
            model.fit(frame, schema=schema)
            model.save(str(out_path))
            model_id = catalog.record_model(model, source=source, model_path=out_path)
            out.print(f"catalog: model #{model_id} trained on {catalog.get(source).ref}")
    return frame


@app.command()
@friendly_errors
def sample(
    model_path: Path = typer.Argument(..., help="Model file written by 'synthgen fit'."),
    n: int = typer.Option(1000, "-n", "--rows", help="Number of rows to generate."),
    out_path: Path = typer.Option(Path("synthetic.parquet"), "--out", help=".csv or .parquet"),
    seed: int = typer.Option(0, help="Sampling seed (same seed, same rows)."),
    device: str | None = typer.Option(None, help="Override the device the model runs on."),
) -> None:
    """Generate rows from a saved model.

    More than 500,000 rows are generated and written in chunks (each chunk's seed is
    spawned from --seed, so the same seed still gives the same rows); the output size
    is estimated first and refused when it exceeds the free space of the folder.
    """
    from pipelines.tables import check_free_space, check_writable, estimate_bytes, write_chunks
    from synthgen import load_model

    _check_rows("-n", n, 0)
    check_writable(out_path)
    model = load_model(_model_file(model_path), device=device)
    start = time.perf_counter()
    probe = model.sample(min(n, PROBE_ROWS), seed=seed)
    check_free_space(out_path, estimate_bytes(probe, n, out_path), n)
    written = write_chunks(_sample_chunks(model, n, seed, probe), out_path)
    out.print(f"sampled {n:,} rows in {time.perf_counter() - start:.1f}s -> {written}")


def _sample_chunks(model: Any, n: int, seed: int, probe: Any) -> Iterator[Any]:
    """``n`` rows as a stream of frames: one ``sample(n, seed)`` call when it is small
    (identical to the library's output), else chunks with seeds spawned from ``seed``."""
    import numpy as np

    if n <= PROBE_ROWS:
        yield probe
        return
    if n <= SAMPLE_CHUNK_ROWS:
        yield model.sample(n, seed=seed)
        return
    for i, first in enumerate(range(0, n, SAMPLE_CHUNK_ROWS)):
        chunk_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        yield model.sample(min(SAMPLE_CHUNK_ROWS, n - first), seed=chunk_seed)


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
    from synthgen import load_model
    from synthgen.augment import augment as augment_frame

    if balance == (counts is not None):
        raise ConfigError("give exactly one of --balance or --counts")
    check_writable(out_path)
    frame = read_table(data)
    model = load_model(_model_file(model_path))
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
    from pipelines import catalog_cmd, evaluate_cmd, run_cmd, scheduler, validate_cmd

    evaluate_cmd.register(app)
    run_cmd.register(app)
    scheduler.register(app)
    validate_cmd.register(app)
    catalog_cmd.register(app)


_register_commands()


def main() -> None:  # pragma: no cover - console entry point
    app(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover - python -m pipelines.cli
    main()
