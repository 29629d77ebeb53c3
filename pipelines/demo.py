"""``synthgen demo``: the main job, end to end, on bundled data and embedded defaults.

It is ``examples/adult_augment.yaml`` run into a local SQLite catalog: fit TabularAR on
80% of the bundled UCI Adult table, top up the minority income class with conditional
samples, validate them with great-expectations, score them (fidelity, utility of the
augmented training set, privacy, bias), check the gates and export the augmented table
with its lineage, report and validation result. A new user sees in about a minute what
the platform does, how good its output is, and where everything went.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

DEMO_NAME = "demo_adult_augment"

#: score -> what it means, in the order the scorecard shows them.
SCORECARD = {
    "fidelity.overall": "SDMetrics quality: synthetic rows vs real rows of their class",
    "fidelity.column_shapes": "per-column distributions (1 = identical)",
    "fidelity.pair_trends": "pairwise correlations (1 = identical)",
    "utility.trtr_roc_auc": "income model trained on real rows, tested on held-out rows",
    "utility.aug_roc_auc": "the same trained on real + synthetic rows",
    "utility.tstr_roc_auc": "the same trained on synthetic rows only",
    "privacy.mia_auc": "membership-inference attack (0.5 = learns nothing)",
    "privacy.dcr_share": "share of rows closer to training than holdout (0.5 ideal)",
}


def demo_spec(epochs: int | None = None, rows: int = 0, seed: int = 0, device: str = "auto"):
    """The demo job: Adult augmentation, or ``rows`` plain samples when rows > 0."""
    from pipelines.jobs.spec import JobSpec

    params: dict[str, Any] = {"device": device}
    if epochs is not None:
        params["epochs"] = epochs
    produce = {"rows": rows} if rows else {"augment": {"target": "income", "balance": True}}
    return JobSpec.model_validate(
        {
            "name": DEMO_NAME,
            "seed": seed,
            "source": {"bundled": "adult"},
            "holdout": {"fraction": 0.2},
            "model": {"backend": "tabular_ar", "params": params},
            "produce": produce,
            "evaluate": {"target": "income", "sensitive": ["sex", "race"]},
            "gates": {"min_fidelity": 0.85, "max_mia_auc": 0.6, "validation_must_pass": True},
            "export": {
                "name": "adult_synthetic" if rows else "adult_augmented",
                "tags": ["demo"],
                "description": "synthgen demo: UCI Adult "
                + ("sample" if rows else "with the >50K class topped up by TabularAR"),
            },
        }
    )


def run_demo(
    out_path: Path | None = None,
    epochs: int | None = None,
    rows: int = 0,
    seed: int = 0,
    device: str = "auto",
    catalog_url: str | None = None,
    console: Console | None = None,
) -> Any:
    """Run the demo job and return its ``JobResult``."""
    from pipelines.catalog import Catalog
    from pipelines.jobs.runner import JobRunner
    from pipelines.run_cmd import console_reporter
    from pipelines.tables import write_table

    console = console or Console()
    spec = demo_spec(epochs, rows, seed, device)
    what = f"{rows:,} samples" if rows else "augmentation of the >50K income class"
    with Catalog(catalog_url) as catalog:
        console.print(
            f"[bold]synthgen demo[/]: TabularAR on bundled UCI Adult (80% to train, 20% held "
            f"out), {what}; catalog {catalog.url}"
        )
        result = JobRunner(spec, catalog, console_reporter(DEMO_NAME)).run()
        table = Table(title="Scorecard")
        table.add_column("score")
        table.add_column("value", justify="right")
        table.add_column("meaning")
        for name, meaning in SCORECARD.items():
            value = result.scores.get(name)
            if value is not None and not math.isnan(value):
                table.add_row(name, f"{value:.3f}", meaning)
        console.print(table)
        for gate in result.gates:
            mark = "[green]passed[/]" if gate.passed else "[red]FAILED[/]"
            console.print(f"gate {gate.gate}: {mark} ({gate.detail})")
        if result.report_uri:
            console.print(f"report: {result.report_uri}")
        if result.status == "succeeded":
            info = result.dataset
            console.print(
                f"catalog entry: {info.ref} ({info.row_count:,} rows, digest "
                f"{info.digest[:12]}) -> {info.uri}\n"
                f"  see it with: synthgen catalog show {info.ref}   |   synthgen catalog serve"
            )
            if out_path is not None:
                write_table(catalog.read(info.ref), out_path)
                console.print(f"wrote {out_path}")
        else:
            console.print(f"[red]{result.status}[/]: {result.error}")
    return result
