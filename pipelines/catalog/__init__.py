"""The data catalog: datasets, lineage, models, reports, validation, the privacy ledger."""

from pipelines.catalog.catalog import Catalog, DatasetInfo, ExportResult, Parent, parse_ref
from pipelines.catalog.database import CatalogError, resolve_url

__all__ = [
    "Catalog",
    "CatalogError",
    "DatasetInfo",
    "ExportResult",
    "Parent",
    "parse_ref",
    "resolve_url",
]
