"""``synthgen export`` and ``synthgen catalog ...``: the catalog from the shell.

Every command takes ``--catalog URL`` (else ``SYNTHGEN_CATALOG_URL``, else
``./synthgen.db``) and ``--json``, which prints exactly one JSON document on stdout so
scripts never parse tables. Bad input is one line on stderr with exit code 2; an export
refused by its validation gate exits with 1 and stores nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from synthgen.errors import ConfigError, DataError

out = Console(soft_wrap=True)

CATALOG_HELP = "Catalog database URL (default: SYNTHGEN_CATALOG_URL or sqlite:///synthgen.db)"


def _open(url: str | None, storage: str | None = None):  # type: ignore[no-untyped-def]
    from pipelines.catalog import Catalog

    return Catalog(url, storage)


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


def _short(digest: str) -> str:
    return digest[:12]


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{what} file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{what} file {str(path)!r} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{what} file {str(path)!r} must hold a JSON object")
    return data


def export_command(
    data: Path,
    name: str,
    parents: list[str],
    relation: str,
    report: Path | None,
    validation: Path | None,
    suite: Path | None,
    schema: Path | None,
    owner: str | None,
    tags: list[str],
    description: str | None,
    na_values: str | None,
    catalog_url: str | None,
    storage: str | None,
    as_json: bool,
) -> int:
    """Run ``synthgen export``; returns the exit code."""
    from pipelines.catalog import Parent
    from pipelines.catalog.catalog import RELATIONS, check_name
    from pipelines.evaluate_cmd import read_table

    check_name(name)
    if relation not in RELATIONS:
        raise ConfigError(f"--relation {relation!r} is not one of {', '.join(RELATIONS)}")
    if suite is not None and validation is not None:
        raise ConfigError("give --suite (validate now) or --validation (a stored result), not both")
    frame = read_table(data, "data", [v for v in (na_values or "").split(",") if v])
    result: Any = None
    if suite is not None:
        from pipelines.validation import load_suite, validate

        result = validate(frame, load_suite(suite))
    elif validation is not None:
        result = _read_json(validation, "validation result")
        if "success" not in result:
            raise DataError(
                f"validation result {str(validation)!r} has no 'success' entry; write it with "
                "synthgen validate ... --out result.json"
            )
    success = result is None or bool(
        result.success if hasattr(result, "success") else result["success"]
    )
    if not success:
        failures = result.summary() if hasattr(result, "summary") else result.get("failures")
        if isinstance(failures, list | tuple):
            failures = "; ".join(
                str(f.get("message", f) if isinstance(f, dict) else f) for f in failures
            )
        lines = [line.strip("- ").strip() for line in str(failures).splitlines() if line.strip()]
        sys.stderr.write(f"error: validation failed, nothing exported: {'; '.join(lines)}\n")
        if as_json:
            _print_json({"exported": False, "validation": _as_dict(result)})
        return 1
    schema_dict = _read_json(schema, "schema") if schema is not None else None
    with _open(catalog_url, storage) as catalog:
        outcome = catalog.export(
            frame,
            name,
            parents=[Parent(p, relation) for p in parents],
            report=report,
            validation=result,
            schema=schema_dict,
            owner=owner,
            tags=tags,
            description=description,
        )
    info = outcome.dataset
    if as_json:
        _print_json({"exported": True, "created": outcome.created, **info.to_dict()})
    else:
        verb = "exported" if outcome.created else "unchanged (identical content):"
        out.print(
            f"{verb} {info.ref} ({info.row_count:,} rows, digest {_short(info.digest)}) -> "
            f"{info.uri}"
        )
    return 0


def _as_dict(result: Any) -> Any:
    return result.to_dict() if hasattr(result, "to_dict") else result


def register(app: typer.Typer) -> None:
    """Add ``export`` and the ``catalog`` command group to ``app``."""
    from pipelines.cli import friendly_errors

    @app.command("export")
    @friendly_errors
    def export(
        data: Path = typer.Argument(..., help="Table to store: .csv or .parquet"),
        name: str = typer.Option(..., "--name", help="Catalog name (a new version if it exists)"),
        parents: list[str] = typer.Option(
            [], "--from", help="Upstream dataset, NAME or NAME@VERSION (repeatable)"
        ),
        relation: str = typer.Option("sampled_from", "--relation", help="How it relates to --from"),
        report: Path | None = typer.Option(None, "--report", help="Evaluation report JSON"),
        validation: Path | None = typer.Option(
            None, "--validation", help="Validation result JSON (synthgen validate --out)"
        ),
        suite: Path | None = typer.Option(
            None, "--suite", help="Expectation suite: validate now; a failure stops the export"
        ),
        schema: Path | None = typer.Option(None, "--schema", help="synthgen schema JSON"),
        owner: str | None = typer.Option(None, "--owner"),
        tags: list[str] = typer.Option([], "--tag", help="Tag (repeatable)"),
        description: str | None = typer.Option(None, "--description"),
        na_values: str | None = typer.Option(None, "--na-values", help="CSV null markers, e.g. ?"),
        catalog_url: str | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
        storage: str | None = typer.Option(
            None, "--storage", help="Storage root of a new catalog (local path or fsspec URL)"
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document"),
    ) -> None:
        """Store a table in the catalog as a new immutable version, with its lineage."""
        code = export_command(
            data, name, parents, relation, report, validation, suite, schema, owner, tags,
            description, na_values, catalog_url, storage, as_json,
        )  # fmt: skip
        if code:
            raise typer.Exit(code=code)

    catalog_app = typer.Typer(
        help="Browse the catalog: datasets, lineage, privacy budgets, job runs.",
        no_args_is_help=True,
    )
    app.add_typer(catalog_app, name="catalog")

    @catalog_app.command("list")
    @friendly_errors
    def list_command(
        name: str | None = typer.Option(None, "--name", help="Only this dataset's versions"),
        latest: bool = typer.Option(False, "--latest", help="Only the latest version of each"),
        catalog_url: str | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON array"),
    ) -> None:
        """List dataset versions."""
        with _open(catalog_url) as catalog:
            infos = catalog.list(name, all_versions=not latest)
        if as_json:
            _print_json([i.to_dict() for i in infos])
            return
        table = Table(title=f"{len(infos)} dataset version(s)")
        for column in ("dataset", "rows", "created", "digest", "tags"):
            table.add_column(column)
        for i in infos:
            table.add_row(
                i.ref, f"{i.row_count:,}", i.created_at[:19], _short(i.digest), ",".join(i.tags)
            )
        out.print(table)

    @catalog_app.command("show")
    @friendly_errors
    def show_command(
        ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
        catalog_url: str | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document"),
    ) -> None:
        """Everything about one version: metadata, schema, profile, lineage, reports."""
        with _open(catalog_url) as catalog:
            shown = catalog.show(ref)
        if as_json:
            _print_json(shown)
            return
        out.print(f"[bold]{shown['name']}@{shown['version']}[/] ({shown['namespace']})")
        for key in ("uri", "digest", "row_count", "bytes", "created_at", "owner", "state"):
            out.print(f"  {key}: {shown[key]}")
        out.print(f"  tags: {', '.join(shown['tags']) or '-'}")
        if "images" in shown:  # an image dataset: rows are images
            images = shown["images"]
            classes = images["classes"]
            out.print(f"  images: {images['count']:,} of {'x'.join(map(str, images['shape']))} "
                      "(channels x height x width)")  # fmt: skip
            out.print(f"  classes ({len(classes)}): {', '.join(classes)}")
            if images.get("extractor"):
                out.print(f"  feature extractor: {images['extractor']['name']}")
        for edge in shown["parents"]:
            out.print(f"  {edge['relation']} {edge['parent']}")
        for report in shown["reports"]:
            scores = ", ".join(f"{k}={v:.3f}" for k, v in report["scores"].items() if v is not None)
            out.print(f"  report {report['id']}: {scores[:300]}")
        for v in shown["validations"]:
            state = "passed" if v["success"] else f"FAILED ({len(v['failures'])} failures)"
            out.print(f"  validation {v['id']}: {state}")
        for model in shown["models"]:
            spent = model.get("privacy_spent")
            dp = f", epsilon {spent['epsilon']:.3g}" if spent else ""
            out.print(f"  model {model['id']}: {model['backend']}{dp}")

    @catalog_app.command("lineage")
    @friendly_errors
    def lineage_command(
        ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
        openlineage: bool = typer.Option(
            False, "--openlineage", help="Print OpenLineage run events (JSON)"
        ),
        catalog_url: str | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document"),
    ) -> None:
        """Where a version came from and what was made from it."""
        with _open(catalog_url) as catalog:
            if openlineage:
                from pipelines.catalog.openlineage import lineage_events, to_json

                sys.stdout.write(to_json(lineage_events(catalog, ref)) + "\n")
                return
            graph = catalog.lineage(ref)
        if as_json:
            _print_json(graph)
            return
        out.print(f"[bold]{graph['dataset']}[/]")
        for edge in graph["upstream"]:
            out.print(f"  {edge['child']} <- {edge['relation']} - {edge['parent']}")
        for edge in graph["downstream"]:
            out.print(f"  {edge['parent']} - {edge['relation']} -> {edge['child']}")
        if not graph["upstream"] and not graph["downstream"]:
            out.print("  (no lineage: a source dataset nothing was made from yet)")

    @catalog_app.command("budget")
    @friendly_errors
    def budget_command(
        source: str = typer.Argument(..., help="Source dataset NAME"),
        set_epsilon: float | None = typer.Option(None, "--set", help="Set the total epsilon"),
        delta: float | None = typer.Option(
            None, "--delta", help="Total delta with --set (default 10 / n^1.5)"
        ),
        catalog_url: str | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document"),
    ) -> None:
        """Show (or set) a source dataset's privacy budget and every charge against it."""
        if delta is not None and set_epsilon is None:
            raise ConfigError("--delta needs --set EPSILON (the budget's total)")
        with _open(catalog_url) as catalog:
            if set_epsilon is not None:
                budget = catalog.set_budget(source, set_epsilon, delta)
            else:
                budget = catalog.budget(source)
        if as_json:
            _print_json(budget)
            return
        out.print(
            f"[bold]{budget['source']}[/]: spent epsilon {budget['spent_epsilon']:.4g} of "
            f"{budget['epsilon']:.4g} (delta {budget['spent_delta']:.3g} of "
            f"{budget['delta']:.3g}); remaining epsilon {budget['remaining_epsilon']:.4g}"
        )
        for c in budget["charges"]:
            out.print(
                f"  #{c['id']} {c['status']:<8} epsilon {c['epsilon']:.4g} delta "
                f"{c['delta']:.3g}  {c['label']}"
            )

    @catalog_app.command("gc")
    @friendly_errors
    def gc_command(
        min_age: float = typer.Option(
            3600.0,
            "--min-age",
            help="Only files older than this many seconds (in-flight exports are younger)",
        ),
        dry_run: bool = typer.Option(False, "--dry-run", help="List, do not delete"),
        catalog_url: str | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document"),
    ) -> None:
        """Remove files no catalog entry refers to (left by interrupted exports)."""
        if min_age < 0:
            raise ConfigError(f"--min-age {min_age} must be >= 0 seconds")
        with _open(catalog_url) as catalog:
            removed = catalog.gc(min_age=min_age, dry_run=dry_run)
        if as_json:
            _print_json({"removed": removed, "dry_run": dry_run})
            return
        verb = "would remove" if dry_run else "removed"
        out.print(f"{verb} {len(removed)} orphaned file(s)")
        for uri in removed:
            out.print(f"  {uri}")

    @catalog_app.command("runs")
    @friendly_errors
    def runs_command(
        limit: int = typer.Option(50, "--limit", min=1),
        catalog_url: str | None = typer.Option(None, "--catalog", help=CATALOG_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON array"),
    ) -> None:
        """Recent job runs: status, stage timings, errors."""
        with _open(catalog_url) as catalog:
            runs = catalog.runs(limit)
        if as_json:
            _print_json(runs)
            return
        table = Table(title=f"{len(runs)} job run(s)")
        for column in ("id", "job", "status", "started", "error"):
            table.add_column(column)
        for r in runs:
            table.add_row(
                str(r["id"]), r["name"], r["status"], (r["started_at"] or "")[:19],
                (r["error"] or "")[:60],
            )  # fmt: skip
        out.print(table)

    from pipelines.serve import register as register_serve

    register_serve(catalog_app)
