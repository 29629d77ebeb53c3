"""The evaluation result: headline scores, detail tables, plot data, and their JSON form.

The JSON document is versioned (``{"format": "synthgen.evaluation", "version": 1}``)
so catalogs and validation gates can read reports written by older releases; detail
tables are stored as lists of records, non-finite numbers as ``null``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthgen.errors import DataError
from synthgen.paths import atomic_path, check_writable

FORMAT = "synthgen.evaluation"
VERSION = 1


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_safe(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _write_text(path: str | Path, text: str) -> None:
    """Write through a temporary file renamed into place: never a half-written report."""
    with atomic_path(path, "report") as tmp:
        tmp.write_text(text, encoding="utf-8")


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [_json_safe(r) for r in df.astype(object).where(df.notna(), None).to_dict("records")]


@dataclass
class EvaluationReport:
    """Result of :func:`evaluation.evaluate`.

    ``scores`` is a flat ``name -> float`` dict (see docs/evaluation.md for every name),
    ``details`` maps a table name (e.g. ``"fidelity.column_shapes"``) to a DataFrame,
    ``meta`` says what was evaluated (rows, columns, sections, skipped sections and
    why, timings, seed), ``plots`` holds the summaries the HTML page draws.
    """

    scores: dict[str, float] = field(default_factory=dict)
    details: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return self.scores[name]

    def section(self, name: str) -> dict[str, float]:
        """Scores of one section, e.g. ``report.section("privacy")``."""
        return {k: v for k, v in self.scores.items() if k.split(".")[0] == name}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "meta": _json_safe(self.meta),
            "scores": _json_safe(dict(sorted(self.scores.items()))),
            "details": {k: _records(v) for k, v in self.details.items()},
            "plots": _json_safe(self.plots),
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON text; written to ``path`` when given."""
        if path is not None:
            check_writable(path, what="report")
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            _write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationReport:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(
                "not a synthgen evaluation report (missing "
                f"'format': '{FORMAT}'); pass a file written by report.to_json"
            )
        if data.get("version") != VERSION:
            raise DataError(
                f"evaluation report version {data.get('version')!r} is not "
                f"supported (this synthgen reads version {VERSION})"
            )
        scores = {k: (math.nan if v is None else float(v)) for k, v in data["scores"].items()}
        details = {k: pd.DataFrame.from_records(v) for k, v in data.get("details", {}).items()}
        return cls(scores, details, data.get("meta", {}), data.get("plots", {}))

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> EvaluationReport:
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text(encoding="utf-8")
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise DataError(f"evaluation report is not valid JSON: {exc}") from None

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML page (inline CSS/SVG/JS); written to ``path`` when given."""
        from evaluation.html import render

        if path is not None:
            check_writable(path, what="report")
        page = render(self)
        if path is not None:
            _write_text(path, page)
        return page

    def __repr__(self) -> str:
        head = ", ".join(
            f"{k}={v:.3f}"
            for k, v in self.scores.items()
            if k.endswith(("overall", "detection.score", "dcr_share", "mia_auc"))
        )
        return f"EvaluationReport({head})"
