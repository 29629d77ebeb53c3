"""``synthgen run job.yaml [...]``: batch jobs end to end, exported to the catalog.

Exit code: 0 when every job succeeded, 1 when any job failed a gate (nothing of it was
exported; its report is kept and the gate is named with its margin), 2 for bad input
(a spec error names the field and line). ``--json`` prints one JSON document: the list
of job results.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

out = Console(soft_wrap=True)


def console_reporter(name: str) -> Any:
    def report(stage: str, event: str, info: dict[str, Any]) -> None:
        if event == "start":
            return
        status = info.get("status", event)
        mark = {"ok": "[green]ok[/]", "cached": "[cyan]cached[/]"}.get(status, f"[red]{status}[/]")
        extras = ", ".join(
            f"{k}={v}" for k, v in info.items() if k not in ("status", "seconds", "error")
        )
        out.print(f"  {name} {stage:<9} {mark} {info.get('seconds', 0):7.1f}s  {extras[:160]}")
        if info.get("error"):
            out.print(f"    [red]{info['error']}[/]")

    return report


def print_result(result: Any) -> None:
    if result.status == "succeeded":
        info = result.dataset
        out.print(
            f"[bold green]{result.name}: succeeded[/] -> {info.ref} ({info.row_count:,} rows, "
            f"digest {info.digest[:12]}), run #{result.run_id}"
        )
    elif result.status == "gate_failed":
        out.print(
            f"[bold red]{result.name}: gate failed, nothing exported[/] (run #{result.run_id})"
        )
        for gate in result.failed_gates():
            out.print(f"  [red]{gate.gate}[/]: {gate.detail}")
    else:
        out.print(f"[bold red]{result.name}: failed[/] (run #{result.run_id}): {result.error}")
    if result.report_uri:
        out.print(f"  report: {result.report_uri}")


def register(app: typer.Typer) -> None:
    from pipelines.cli import friendly_errors

    @app.command("run")
    @friendly_errors
    def run_command(
        specs: list[Path] = typer.Argument(..., help="Job spec YAML file(s)"),
        catalog_url: str | None = typer.Option(
            None, "--catalog", help="Catalog URL (default SYNTHGEN_CATALOG_URL or ./synthgen.db)"
        ),
        executor: str = typer.Option("local", "--executor", help="local or ray"),
        jobs: int = typer.Option(1, "--jobs", min=1, help="Jobs run at once (local executor)"),
        address: str | None = typer.Option(
            None, "--address", help="Ray cluster address (ray executor), e.g. auto"
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON document"),
    ) -> None:
        """Run batch jobs: fit, sample, validate, evaluate, gate, export to the catalog."""
        from pipelines.jobs.executors import run_many
        from pipelines.jobs.spec import load_spec

        loaded = [load_spec(p) for p in specs]  # every spec checked before any job starts
        reporter = None if as_json else console_reporter
        if not as_json and (executor == "ray" or (jobs > 1 and len(loaded) > 1)):
            where = "ray" if executor == "ray" else f"{min(jobs, len(loaded))} local processes"
            out.print(f"running {len(loaded)} job(s) on {where}; results when they finish")
        results = run_many(
            loaded, catalog_url=catalog_url, executor=executor, jobs=jobs, address=address,
            reporter=reporter,
        )  # fmt: skip
        if as_json:
            sys.stdout.write(json.dumps([r.to_dict() for r in results], indent=2) + "\n")
        else:
            for result in results:
                print_result(result)
        code = max((r.exit_code for r in results), default=0)
        if code:
            raise typer.Exit(code=code)
