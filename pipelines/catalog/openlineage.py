"""Lineage as OpenLineage run events, built with the ``openlineage-python`` classes.

Each dataset version made from others becomes one COMPLETE ``RunEvent``: its parents
are the inputs, the version is the output (dataset name plus the version facet), and
all carry the schema facet (column
names and types) and the column-metrics facet (null and distinct counts, min, max,
sum, quartiles from the stored profile). The run id is a UUID derived from the catalog
and the dataset version, so exporting the same lineage twice gives the same events and
a lineage server deduplicates them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pipelines.catalog.catalog import Catalog, DatasetInfo

PRODUCER = "https://github.com/synthgen/synthgen/tree/main/pipelines/catalog"
RUN_NAMESPACE = uuid.UUID("6f3c2d0e-51a8-4f4e-9b8a-2f1a7c8e9d10")


def _schema_facet(info: DatasetInfo) -> Any:
    from openlineage.client.generated.schema_dataset import (
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )

    columns = info.profile.get("columns", {})
    kinds = {c.get("name"): c.get("kind") for c in info.schema.get("columns", [])}
    return SchemaDatasetFacet(
        fields=[
            SchemaDatasetFacetFields(
                name=name,
                type=str(stats.get("dtype")),
                description=f"synthgen kind: {kinds[name]}" if kinds.get(name) else None,
                ordinal_position=position,
            )
            for position, (name, stats) in enumerate(columns.items(), start=1)
        ]
    )


def _column_metrics(info: DatasetInfo) -> dict[str, Any]:
    from openlineage.client.generated.data_quality_metrics_dataset import ColumnMetrics

    metrics = {}
    for name, stats in info.profile.get("columns", {}).items():
        quantiles = {k: v for k, v in (stats.get("quantiles") or {}).items() if v is not None}
        numeric = isinstance(stats.get("min"), int | float)
        metrics[name] = ColumnMetrics(
            nullCount=stats.get("null_count"),
            distinctCount=stats.get("distinct_count"),
            count=float(info.row_count - stats.get("null_count", 0)),
            sum=stats.get("sum"),
            min=stats.get("min") if numeric else None,
            max=stats.get("max") if numeric else None,
            quantiles=quantiles,
        )
    return metrics


def dataset_facets(info: DatasetInfo) -> dict[str, Any]:
    from openlineage.client.generated.data_quality_metrics_dataset import (
        DataQualityMetricsDatasetFacet,
    )
    from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet

    return {
        "version": DatasetVersionDatasetFacet(datasetVersion=str(info.version)),
        "schema": _schema_facet(info),
        "dataQualityMetrics": DataQualityMetricsDatasetFacet(
            columnMetrics=_column_metrics(info), rowCount=info.row_count, bytes=info.bytes
        ),
    }


def run_event(catalog: Catalog, info: DatasetInfo, parents: list[tuple[DatasetInfo, str]]) -> Any:
    """The COMPLETE run event that produced ``info`` from ``parents``."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.generated.data_quality_metrics_input_dataset import (
        DataQualityMetricsInputDatasetFacet,
    )

    relations = sorted({relation for _, relation in parents}) or ["export"]
    run_id = uuid.uuid5(RUN_NAMESPACE, f"{catalog.url}|{info.namespace}|{info.ref}|{info.digest}")
    inputs = [
        InputDataset(
            namespace=parent.namespace,
            name=parent.name,
            facets=dataset_facets(parent),
            inputFacets={
                "dataQualityMetrics": DataQualityMetricsInputDatasetFacet(
                    columnMetrics=_column_metrics(parent),
                    rowCount=parent.row_count,
                    bytes=parent.bytes,
                )
            },
        )
        for parent, _ in parents
    ]
    output = OutputDataset(namespace=info.namespace, name=info.name, facets=dataset_facets(info))
    return RunEvent(
        eventType=RunState.COMPLETE,
        eventTime=info.created_at,
        run=Run(runId=str(run_id)),
        job=Job(namespace=info.namespace, name=f"{'+'.join(relations)}.{info.name}"),
        inputs=inputs,
        outputs=[output],
        producer=PRODUCER,
    )


def lineage_events(catalog: Catalog, ref: str) -> list[Any]:
    """Run events for ``ref`` and everything upstream of it, oldest first."""
    graph = catalog.lineage(ref)
    by_child: dict[str, list[tuple[str, str]]] = {}
    for edge in graph["upstream"]:
        by_child.setdefault(edge["child"], []).append((edge["parent"], edge["relation"]))
    infos: dict[str, DatasetInfo] = {}

    def info_of(r: str) -> DatasetInfo:
        if r not in infos:
            infos[r] = catalog.get(r)
        return infos[r]

    events = []
    for child, parents in by_child.items():
        events.append(run_event(catalog, info_of(child), [(info_of(p), rel) for p, rel in parents]))
    if not by_child:  # a source dataset: one event that only outputs it
        events.append(run_event(catalog, info_of(graph["dataset"]), []))
    return sorted(events, key=lambda e: e.eventTime)


def to_json(events: list[Any]) -> str:
    from openlineage.client.serde import Serde

    return json.dumps([json.loads(Serde.to_json(e)) for e in events], indent=2)
