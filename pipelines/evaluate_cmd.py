"""``synthgen evaluate``: score a synthetic file against the real one from the shell.

Kept in its own module so the CLI entry point only has to call ``register(app)``.
Files are read by extension (.csv / .parquet / .pq); any problem with a file or an
option is printed as one line and exits with code 2, never as a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from pipelines.tables import check_input
from synthgen.errors import DataError, SynthgenError
from synthgen.paths import check_writable


def read_table(path: Path, argument: str, na_values: list[str] | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file, turning every failure into a DataError naming the file."""
    check_input(path, f"{argument} file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, skipinitialspace=True, na_values=na_values or None)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read {argument} file {str(path)!r}: {first}") from None
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read {argument} file {str(path)!r}: {first}") from None
    raise DataError(f"{argument} file {str(path)!r} has extension {suffix!r}; use .csv or .parquet")


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""

    @app.command("evaluate")
    def evaluate_command(
        real: Path = typer.Option(..., "--real", help="Real (training) table, .csv or .parquet"),
        synthetic: Path = typer.Option(..., "--synthetic", help="Synthetic table"),
        out: Path = typer.Option(..., "--out", help="Report path: .html or .json"),
        holdout: Path | None = typer.Option(
            None, "--holdout", help="Real rows the generator never saw"
        ),
        target: str | None = typer.Option(None, "--target", help="Label column for utility"),
        sensitive: str | None = typer.Option(
            None, "--sensitive", help="Comma-separated sensitive columns"
        ),
        metrics: str = typer.Option("all", "--metrics", help="'all' or comma-separated sections"),
        seed: int = typer.Option(0, "--seed"),
        na_values: str | None = typer.Option(
            None, "--na-values", help="Extra CSV null markers, e.g. '?'"
        ),
        augmentation: bool = typer.Option(
            False, "--augmentation", help="Also score real+synthetic training"
        ),
        model: Path | None = typer.Option(
            None,
            "--model",
            help="Model file that generated --synthetic: a DP model's privacy receipt "
            "fills the report's DP section (dp.epsilon, dp.delta)",
        ),
    ) -> None:
        """Score a synthetic table (fidelity, detection, utility, FID, bias, privacy)."""
        from evaluation import evaluate

        try:
            suffix = out.suffix.lower()
            if suffix not in (".html", ".htm", ".json"):
                raise DataError(f"--out {str(out)!r} must end in .html or .json")
            check_writable(out, what="report", error=DataError)
            nas = [s for s in na_values.split(",")] if na_values else None
            real_df = read_table(real, "--real", nas)
            syn_df = read_table(synthetic, "--synthetic", nas)
            hold_df = read_table(holdout, "--holdout", nas) if holdout is not None else None
            dp = None
            if model is not None:
                from synthgen import load_model

                dp = load_model(str(model)).privacy_spent
            report = evaluate(
                real_df,
                syn_df,
                hold_df,
                target=target,
                sensitive=sensitive,
                metrics=metrics,
                seed=seed,
                utility_augmentation=augmentation,
                dp=dp,
            )
            if suffix == ".json":
                report.to_json(out)
            else:
                report.to_html(out)
        except SynthgenError as exc:
            typer.echo(f"error: {' '.join(str(exc).split())}", err=True)  # one line
            raise typer.Exit(code=2) from None
        shown = (
            "fidelity.overall",
            "detection.score",
            "fid.tabular",
            "privacy.dcr_share",
            "privacy.mia_auc",
            "dp.epsilon",
            "dp.delta",
        )
        for name in shown:
            if name in report.scores:
                typer.echo(f"{name}: {report.scores[name]:.4f}")
        typer.echo(f"report written to {out}")
