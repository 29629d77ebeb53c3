"""``evaluate``: run the requested sections and assemble an ``EvaluationReport``.

Sections are independent so that a job can ask only for what its gate checks; they
share one encoder fitted on the real table and the utility models (the bias section
reuses their predictions rather than training again).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from evaluation import validation as v
from evaluation.encoding import TableEncoder
from evaluation.plots import distributions, pair_matrix
from evaluation.report import EvaluationReport
from evaluation.threads import model_threads
from synthgen.errors import ConfigError, SchemaError
from synthgen.schema import Schema

#: Below this many rows per table the model-based sections are skipped, not failed.
MIN_MODEL_ROWS = 20


def _dp_info(dp: Any) -> dict[str, Any] | None:
    """Accept a ``PrivacySpent``-like object, a dict, or an (epsilon, delta) pair."""
    if dp is None:
        return None
    if isinstance(dp, dict):
        info = dict(dp)
    elif isinstance(dp, tuple | list) and len(dp) == 2:
        info = {"epsilon": dp[0], "delta": dp[1]}
    elif hasattr(dp, "to_dict") and hasattr(dp, "epsilon"):
        info = dict(dp.to_dict())
    elif hasattr(dp, "epsilon"):
        info = {
            k: getattr(dp, k)
            for k in dir(dp)
            if not k.startswith("_") and not callable(getattr(dp, k))
        }
    else:
        raise ConfigError(
            f"dp must be a PrivacySpent, a dict with 'epsilon' and 'delta' or an "
            f"(epsilon, delta) pair, got {type(dp).__name__}"
        )
    if "epsilon" not in info or "delta" not in info:
        raise ConfigError(f"dp information needs 'epsilon' and 'delta', got keys {sorted(info)}")
    return info


def _audit_info(audit: Any) -> dict[str, Any] | None:
    """A ``privacy.audit.CanaryAudit`` (or its ``to_dict``) for the report's DP section."""
    if audit is None:
        return None
    info = dict(audit.to_dict()) if hasattr(audit, "to_dict") else audit
    if not isinstance(info, dict) or "epsilon_lower_bound" not in info:
        raise ConfigError(
            "dp_audit must be a privacy.audit.CanaryAudit (run_canary_audit's result) or a "
            f"dict with 'epsilon_lower_bound', got {type(audit).__name__}"
        )
    return info


def evaluate(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame | None = None,
    target: str | None = None,
    sensitive: str | Iterable[str] | None = None,
    schema: Schema | None = None,
    metrics: str | Iterable[str] = "all",
    seed: int = 0,
    dp: Any = None,
    dp_audit: Any = None,
    utility_augmentation: bool = False,
    fid_mlp: bool = False,
    detection_rows: int | None = 10_000,
    alpha_rows: int | None = 5_000,
    privacy_rows: int | None = 10_000,
    bias_tolerance: float = 0.02,
    n_jobs: int | None = 1,
) -> EvaluationReport:
    """Score ``synthetic`` against ``real`` (the generator's training data).

    ``holdout`` is real data the generator never saw: the utility models are tested on
    it and the privacy attacks use it as non-members. ``target`` enables utility and the
    outcome parts of bias; ``sensitive`` (list or comma-separated) enables bias.
    ``metrics`` is ``"all"`` or a subset of ``evaluation.SECTIONS``. ``dp`` (e.g. a
    model's ``privacy_spent``) adds ``dp.epsilon`` / ``dp.delta``; ``dp_audit`` (a
    ``privacy.audit.CanaryAudit``) adds ``dp.audit_epsilon_lower_bound``. The ``*_rows``
    arguments cap the rows used by the costlier sections (None = all rows).
    ``n_jobs`` caps the threads of the scikit-learn models (see ``evaluation.threads``).
    """
    real = v.check_frame(real, "real")
    synthetic = v.align_columns(v.check_frame(synthetic, "synthetic"), real, "synthetic")
    if holdout is not None:
        holdout = v.align_columns(v.check_frame(holdout, "holdout"), real, "holdout")
    columns = list(real.columns)
    v.check_target(target, columns)
    sensitive_cols = v.parse_sensitive(sensitive, columns)
    sections = v.parse_sections(metrics)
    if schema is None:
        schema = Schema.infer(real)
    v.check_schema(schema, real)
    if all(spec.kind == "id" for spec in schema):
        raise SchemaError(
            f"every column of real is an id column ({schema.names}); nothing to compare. "
            "Pass schema= with the kinds of the columns that carry information"
        )
    if target is not None and schema[target].kind == "id":
        raise ConfigError(f"target column {target!r} is an id column; pick a label column")
    real = v.coerce_kinds(real, schema, "real")
    synthetic = v.coerce_kinds(synthetic, schema, "synthetic", reference=real)
    if holdout is not None:
        holdout = v.coerce_kinds(holdout, schema, "holdout", reference=real)
    dp_info = _dp_info(dp)
    audit_info = _audit_info(dp_audit)

    report = EvaluationReport()
    skipped: dict[str, str] = {}
    timings: dict[str, float] = {}
    encoder = TableEncoder.fit(real, schema)
    cache: dict[str, Any] = {}

    def encoded() -> tuple[np.ndarray, np.ndarray]:
        if "enc" not in cache:
            cache["enc"] = (encoder.standardised(real), encoder.standardised(synthetic))
        return cache["enc"]

    run = None
    small = min(len(real), len(synthetic)) < MIN_MODEL_ROWS
    for section in sections:
        start = time.perf_counter()
        if small and section in ("detection", "alpha_precision", "utility", "fid"):
            skipped[section] = (
                f"needs at least {MIN_MODEL_ROWS} real and synthetic rows "
                f"(got {len(real)} and {len(synthetic)})"
            )
            continue
        if section == "fidelity":
            from evaluation.fidelity import fidelity

            scores, details = fidelity(real, synthetic, schema)
            report.plots["distributions"] = distributions(real, synthetic, schema)
            report.plots["pair_matrix"] = pair_matrix(details["fidelity.pair_trends"])
        elif section == "detection":
            from evaluation.detection import detection

            scores, details = detection(
                real, synthetic, encoder, max_rows=detection_rows, seed=seed, n_jobs=n_jobs
            )
        elif section == "alpha_precision":
            from evaluation.alpha_precision import alpha_precision

            x_r, x_s = encoded()
            scores, details = alpha_precision(x_r, x_s, max_rows=alpha_rows, seed=seed), {}
        elif section == "utility":
            if target is None:
                skipped[section] = "no target column given (pass target=...)"
                continue
            from evaluation.utility import utility

            scores, details, run = utility(
                real,
                synthetic,
                holdout,
                target,
                schema,
                encoder,
                augmentation=utility_augmentation,
                seed=seed,
                n_jobs=n_jobs,
            )
        elif section == "fid":
            from evaluation.fid import fid

            x_r, x_s = encoded()
            y = None
            if fid_mlp and target is not None:
                y = (
                    real[target].astype(str).to_numpy(dtype=object)
                    if schema[target].kind != "numerical"
                    else real[target].to_numpy(dtype="float64")
                )
            with model_threads(n_jobs):
                scores, details = fid(x_r, x_s, seed=seed, y_real=y, mlp=fid_mlp), {}
        elif section == "bias":
            if not sensitive_cols:
                skipped[section] = "no sensitive columns given (pass sensitive=[...])"
                continue
            from evaluation.bias import bias

            scores, details = bias(
                real, synthetic, sensitive_cols, schema, target, run, tolerance=bias_tolerance
            )
        else:  # privacy
            from evaluation.privacy_risk import privacy_risk

            scores, details = privacy_risk(
                real, synthetic, holdout, schema, max_rows=privacy_rows, seed=seed
            )
            if holdout is None:
                skipped["privacy.dcr_share"] = "no holdout given: DCR share and MIA need one"
        report.scores.update(scores)
        report.details.update(details)
        timings[section] = round(time.perf_counter() - start, 3)
    if dp_info is not None:
        report.scores["dp.epsilon"] = float(dp_info["epsilon"])
        report.scores["dp.delta"] = float(dp_info["delta"])
        report.details["dp.accounting"] = pd.DataFrame(
            {"field": list(dp_info), "value": [str(x) for x in dp_info.values()]}
        )
    if audit_info is not None:
        report.scores["dp.audit_epsilon_lower_bound"] = float(audit_info["epsilon_lower_bound"])
        report.details["dp.audit"] = pd.DataFrame(
            {"field": list(audit_info), "value": [str(x) for x in audit_info.values()]}
        )
    report.meta = {
        "rows": {
            "real": len(real),
            "synthetic": len(synthetic),
            "holdout": None if holdout is None else len(holdout),
        },
        "columns": {s.name: s.kind for s in schema},
        "target": target,
        "sensitive": sensitive_cols,
        "sections": [s for s in sections if s not in skipped],
        "skipped": skipped,
        "seed": seed,
        "timings_s": timings,
        "created": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }
    report.scores = {k: (float(x) if x is not None else math.nan) for k, x in report.scores.items()}
    return report
