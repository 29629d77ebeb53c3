"""``synthgen validate``: the great-expectations gate from the shell.

``synthgen validate --real train.csv syn.parquet`` derives a suite from the real table
and checks the file; ``synthgen validate --suite suite.json syn.parquet`` checks it
against a saved (possibly hand-edited) suite. The exit code is the gate: 0 when every
expectation passed, 1 when any failed, 2 for bad input (one line on stderr, no
traceback), so a script or a scheduler can stop an export on a non-zero code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from synthgen.errors import ConfigError

_ONLY_WITH_REAL = ("--rows", "--rows-from-data", "--null-tolerance", "--save-suite")


def _check_options(
    real: Path | None,
    suite: Path | None,
    rows: int | None,
    rows_from_data: bool,
    null_tolerance: float | None,
    save_suite: Path | None,
) -> None:
    """Exactly one suite source, and the deriving options only where a suite is derived."""
    if (real is None) == (suite is None):
        raise ConfigError(
            "give exactly one of --real TABLE (derive the suite from the real table) or "
            "--suite FILE (a suite saved with --save-suite)"
        )
    given = [rows is not None, rows_from_data, null_tolerance is not None, save_suite is not None]
    if suite is not None and any(given):
        flags = ", ".join(f for f, g in zip(_ONLY_WITH_REAL, given, strict=True) if g)
        raise ConfigError(
            f"{flags} only apply with --real (they shape a derived suite); edit the suite file "
            "instead"
        )
    if rows is not None and rows_from_data:
        raise ConfigError("give at most one of --rows N and --rows-from-data")
    if rows is not None and rows < 0:
        raise ConfigError(f"--rows {rows} must be at least 0")


def _print_table(result: Any) -> None:
    """A table of every expectation (failed ones first), the verdict, then one unwrapped
    line per failure (so a log keeps each failure greppable on a line of its own)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    table = Table(title="great-expectations validation")
    for name in ("status", "expectation", "column"):
        table.add_column(name, overflow="fold")
    for failure in result.failures:
        table.add_row(
            Text("FAILED", style="bold red"), failure.expectation, failure.column or "(table)"
        )
    for entry in result.result.get("results", []):
        if entry.get("success"):
            config = entry.get("expectation_config") or {}
            column = (config.get("kwargs") or {}).get("column")
            table.add_row(Text("passed", style="green"), config.get("type"), column or "(table)")
    console.print(table)
    stats = result.statistics
    verdict = "PASSED" if result.success else "FAILED"
    console.print(
        f"validation {verdict}: {stats.get('successful_expectations', 0)} of "
        f"{stats.get('evaluated_expectations', 0)} expectations passed"
    )
    for failure in result.failures:
        console.print(Text(f"- {failure.message}"), soft_wrap=True)


def _write_json(doc: dict[str, Any], path: Path) -> None:
    from synthgen.paths import atomic_path

    with atomic_path(path, "validation result") as tmp:
        tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def register(app: typer.Typer) -> None:
    """Add the ``validate`` command to ``app``."""
    from pipelines.cli import friendly_errors  # here: pipelines.cli imports this module

    @app.command("validate")
    @friendly_errors
    def validate_command(
        data: Path = typer.Argument(..., help="Table to validate (.csv or .parquet)."),
        real: Path | None = typer.Option(
            None, "--real", help="Real table to derive the suite from (.csv or .parquet)."
        ),
        suite: Path | None = typer.Option(
            None, "--suite", help="Suite JSON written by --save-suite (maybe edited)."
        ),
        rows: int | None = typer.Option(
            None, "--rows", help="With --real: expect exactly this many rows."
        ),
        rows_from_data: bool = typer.Option(
            False,
            "--rows-from-data",
            help="With --real: expect as many rows as the real table has.",
        ),
        null_tolerance: float | None = typer.Option(
            None,
            "--null-tolerance",
            help="With --real: extra share of nulls allowed in nullable columns (0.05).",
        ),
        save_suite_path: Path | None = typer.Option(
            None, "--save-suite", help="With --real: write the derived suite to this JSON file."
        ),
        out: Path | None = typer.Option(
            None, "--out", help="Write the full result (GX's JSON included) to this file."
        ),
        json_output: bool = typer.Option(
            False, "--json", help="Print one JSON document instead of a table."
        ),
    ) -> None:
        """Check a table against a great-expectations suite (exit 0 passed, 1 failed)."""
        from pipelines import validation
        from pipelines.tables import read_table
        from synthgen.paths import check_writable

        _check_options(real, suite, rows, rows_from_data, null_tolerance, save_suite_path)
        for path, what in ((out, "validation result"), (save_suite_path, "expectation suite")):
            if path is not None:
                check_writable(path, what=what)
        if suite is not None:
            suite_dict = validation.load_suite(suite)
            frame = read_table(data)
        else:
            assert real is not None
            real_frame = read_table(real)
            frame = read_table(data)
            suite_dict = validation.derive_suite(
                real_frame,
                rows=len(real_frame) if rows_from_data else rows,
                null_tolerance=0.05 if null_tolerance is None else null_tolerance,
            )
            if save_suite_path is not None:
                validation.save_suite(suite_dict, save_suite_path)
        result = validation.validate(frame, suite_dict)
        if out is not None:
            _write_json(result.to_dict(), out)
        if json_output:
            typer.echo(json.dumps(result.to_dict(include_result=False), indent=2))
        else:
            _print_table(result)
        if not result.success:
            raise typer.Exit(code=1)
