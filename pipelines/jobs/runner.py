"""Run one job: load -> fit -> sample -> validate -> evaluate -> gate -> export.

Every run is recorded in the catalog (status, each stage's seconds and outcome, the
error), whether it succeeds, fails a gate or crashes. The fitted model is stored in the
catalog under a key made of the source's digest and the model config, so a run with
the same key reuses it: a job killed after fitting resumes from the saved model, and a
DP model is never trained (and charged) twice for the same release. A DP fit charges
the source's privacy budget in the catalog, refused before training if it does not fit.
Nothing is exported unless every gate passes; a failed gate keeps the report.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.catalog import Catalog, DatasetInfo, Parent
from pipelines.catalog.storage import REPORTS_DIR
from pipelines.jobs.spec import JobSpec, load_spec
from synthgen.errors import ConfigError, DataError, SynthgenError

STAGES = ("load", "fit", "sample", "validate", "evaluate", "gate", "export")
#: A sampling request above this many rows is generated in partitions of this size, each
#: with its own seed derived from the job seed: the same rows whichever executor (and
#: however many workers) generates them.
PARTITION_ROWS = 250_000


def partition_plan(rows: int, seed: int) -> list[tuple[int, int]]:
    """(rows, seed) of each partition of a sampling request."""
    import numpy as np

    if rows <= PARTITION_ROWS:
        return [(rows, seed + 1)]
    sizes = [PARTITION_ROWS] * (rows // PARTITION_ROWS)
    if rows % PARTITION_ROWS:
        sizes.append(rows % PARTITION_ROWS)
    children = np.random.SeedSequence(seed + 1).spawn(len(sizes))
    return [(n, int(c.generate_state(1)[0])) for n, c in zip(sizes, children, strict=True)]


def sample_partitions_locally(model: Any, plan: list[tuple[int, int]]) -> list[pd.DataFrame]:
    return [model.sample(n, seed=s) for n, s in plan]


#: How partitions are generated: locally in order, or spread over workers (Ray).
PartitionMap = Callable[[Any, list[tuple[int, int]]], list[pd.DataFrame]]


@dataclass
class GateResult:
    gate: str
    threshold: Any
    value: Any
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "threshold": self.threshold,
            "value": self.value,
            "passed": self.passed,
            "detail": self.detail,
        }


@dataclass
class JobResult:
    name: str
    run_id: int | None
    status: str = "running"  # succeeded | gate_failed | failed
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    gates: list[GateResult] = field(default_factory=list)
    dataset: DatasetInfo | None = None
    scores: dict[str, float] = field(default_factory=dict)
    report_uri: str | None = None
    model_id: int | None = None
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return {"succeeded": 0, "gate_failed": 1}.get(self.status, 2)

    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "run_id": self.run_id,
            "status": self.status,
            "exit_code": self.exit_code,
            "stages": self.stages,
            "gates": [g.to_dict() for g in self.gates],
            "dataset": self.dataset.to_dict() if self.dataset else None,
            "scores": {k: (None if isinstance(v, float) and math.isnan(v) else v)
                       for k, v in self.scores.items()},
            "report_uri": self.report_uri,
            "model_id": self.model_id,
            "error": self.error,
        }  # fmt: skip


# ---------------------------------------------------------------------- helpers
def load_source(spec: JobSpec, catalog: Catalog) -> tuple[pd.DataFrame, DatasetInfo]:
    """The source table, registered in the catalog (idempotent: same content, same version)."""
    from pipelines.catalog.catalog import check_name

    source = spec.source
    if source.kind == "catalog":
        info = catalog.get(source.catalog)
        return catalog.read(info.ref), info
    if source.kind == "bundled":
        import synthgen as sg

        frame = sg.datasets.load(source.bundled)
        default_name = source.bundled
    elif source.kind == "file":
        from pipelines.evaluate_cmd import read_table

        path = spec.resolve(source.file)
        frame = read_table(path, "source", source.na_values or None)
        default_name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in path.stem)
    else:
        frame = _read_sql(source.sql.url, source.sql.query)
        default_name = f"{spec.name}_source"
    name = check_name(source.name or default_name, "source name")
    result = catalog.export(frame, name, description=f"source of job {spec.name}")
    return catalog.read(result.dataset.ref), result.dataset


def _read_sql(url: str, query: str) -> pd.DataFrame:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = create_engine(url)
    except Exception as exc:  # ArgumentError, missing driver, ...
        raise ConfigError(f"source.sql.url {url!r} is not usable: {exc}") from None
    try:
        with engine.connect() as conn:
            return pd.read_sql(text(query), conn)
    except SQLAlchemyError as exc:
        reason = " ".join(str(getattr(exc, "orig", exc)).split())[:300]
        raise DataError(f"source.sql.query failed: {reason}") from None
    finally:
        engine.dispose()


def split(frame: pd.DataFrame, spec: JobSpec) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    if spec.holdout is None:
        return frame.reset_index(drop=True), None
    seed = spec.seed if spec.holdout.seed is None else spec.holdout.seed
    holdout = frame.sample(frac=spec.holdout.fraction, random_state=seed)
    train = frame.drop(holdout.index)
    if len(train) < 2 or len(holdout) < 1:
        raise DataError(
            f"source has {len(frame)} rows: too few to hold out {spec.holdout.fraction:.0%}; "
            "use a larger source or holdout: null"
        )
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def build_model(spec: JobSpec) -> Any:
    from synthgen.backends import BACKENDS

    cls = BACKENDS[spec.model.backend]
    params = dict(spec.model.params)
    for reserved in ("seed", "dp", "epsilon", "delta"):
        if reserved in params:
            raise ConfigError(
                f"model.params.{reserved}: set it at the job level (seed:) or as model.dp, "
                "not in params (a job's privacy budget is model.dp, which the ledger charges)"
            )
    unknown = [k for k in params if k not in cls._param_names()]
    if unknown:
        raise ConfigError(
            f"model.params: backend {spec.model.backend!r} does not take {unknown}; it takes "
            f"{sorted(cls._param_names())}"
        )
    if spec.model.dp is not None:
        params["dp"] = spec.model.dp.config()
        if spec.model.backend == "ctgan":
            params.setdefault("pac", 1)  # DP-SGD clips per row: no packs of real rows
    return cls(**params, seed=spec.seed)


def bias_widening(scores: dict[str, float]) -> float:
    """Largest widening of a group gap, synthetic over real (or TSTR over TRTR)."""
    widening = []
    for key, value in scores.items():
        if key.endswith(".target_gap_synthetic"):
            real = scores.get(key.replace("_synthetic", "_real"))
            widening.append(value - real if real is not None else math.nan)
        elif key.startswith("bias.") and key.endswith("_tstr"):
            real = scores.get(key[: -len("_tstr")] + "_trtr")
            widening.append(value - real if real is not None else math.nan)
    finite = [w for w in widening if not math.isnan(w)]
    return max(finite) if finite else math.nan


def check_gates(
    spec: JobSpec, scores: dict[str, float], validation: Any, spent: Any
) -> list[GateResult]:
    gates = spec.gates
    out: list[GateResult] = []

    def number(gate: str, threshold: float | None, value: float, higher_is_better: bool) -> None:
        if threshold is None:
            return
        if value is None or math.isnan(value):
            out.append(GateResult(gate, threshold, None, False, "not measured by the evaluation"))
            return
        ok = value >= threshold if higher_is_better else value <= threshold
        sign = ">=" if higher_is_better else "<="
        margin = value - threshold
        detail = f"{value:.4g} {sign} {threshold:g} (margin {margin:+.4g})"
        if not ok:
            detail = f"{value:.4g} is not {sign} {threshold:g} (off by {abs(margin):.4g})"
        out.append(GateResult(gate, threshold, value, ok, detail))

    number("min_fidelity", gates.min_fidelity, scores.get("fidelity.overall", math.nan), True)
    number("max_mia_auc", gates.max_mia_auc, scores.get("privacy.mia_auc", math.nan), False)
    if gates.max_epsilon is not None:
        value = spent.epsilon if spent is not None else math.nan
        number("max_epsilon", gates.max_epsilon, value, False)
    number("max_bias_gap_widening", gates.max_bias_gap_widening, bias_widening(scores), False)
    if gates.validation_must_pass:
        first = "; ".join(f.message for f in validation.failures[:3])
        detail = (
            "all expectations passed"
            if validation.success
            else f"{len(validation.failures)} expectation(s) failed: {first}"
        )
        out.append(
            GateResult("validation_must_pass", True, validation.success, validation.success, detail)
        )
    return out


# ---------------------------------------------------------------------- the runner
Reporter = Callable[[str, str, dict[str, Any]], None]


def _quiet(stage: str, event: str, info: dict[str, Any]) -> None:
    return None


class JobRunner:
    """Runs one spec against one catalog; ``reporter(stage, event, info)`` shows progress."""

    def __init__(
        self,
        spec: JobSpec,
        catalog: Catalog,
        reporter: Reporter | None = None,
        partition_map: PartitionMap | None = None,
    ) -> None:
        self.spec = spec
        self.catalog = catalog
        self.report = reporter or _quiet
        self.partition_map = partition_map or sample_partitions_locally
        self.result = JobResult(name=spec.name, run_id=None)

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        info: dict[str, Any] = {}
        self.report(name, "start", info)
        start = time.perf_counter()
        try:
            yield info
        except BaseException as exc:
            info.update(status="failed", seconds=round(time.perf_counter() - start, 3))
            info["error"] = f"{type(exc).__name__}: {exc}"[:500]
            self.result.stages[name] = info
            self.report(name, "failed", info)
            raise
        info.setdefault("status", "ok")
        info["seconds"] = round(time.perf_counter() - start, 3)
        self.result.stages[name] = info
        self.report(name, "done", info)

    def run(self) -> JobResult:
        spec, result = self.spec, self.result
        result.run_id = self.catalog.start_run(spec.name, spec.to_dict())
        try:
            self._run()
        except SynthgenError as exc:
            result.status, result.error = "failed", " ".join(str(exc).split())
        except BaseException as exc:
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
            self._finish()
            raise
        self._finish()
        return result

    def _finish(self) -> None:
        r = self.result
        stages = dict(r.stages)
        stages["_gates"] = [g.to_dict() for g in r.gates]
        if r.report_uri:
            stages["_report_uri"] = r.report_uri
        self.catalog.finish_run(r.run_id, r.status, stages=stages, error=r.error)

    def _run(self) -> None:
        spec, catalog, result = self.spec, self.catalog, self.result
        with self.stage("load") as info:
            frame, source = load_source(spec, catalog)
            train, holdout = split(frame, spec)
            info.update(source=source.ref, rows=len(frame), train_rows=len(train))
        with self.stage("fit") as info:
            model, model_id, cached = self._fit(train, source)
            result.model_id = model_id
            info.update(model_id=model_id, cached=cached, backend=spec.model.backend)
            if cached:
                info["status"] = "cached"
            if model.privacy_spent is not None:
                info["epsilon"] = model.privacy_spent.epsilon
        with self.stage("sample") as info:
            synthetic, output = self._sample(model, train)
            info.update(rows=len(synthetic), output_rows=len(output))
        with self.stage("validate") as info:
            from pipelines.validation import derive_suite, validate

            suite = derive_suite(train, model.schema, rows=len(synthetic))
            validation = validate(synthetic, suite)
            info.update(success=validation.success, failures=len(validation.failures))
        with self.stage("evaluate") as info:
            report = self._evaluate(model, train, holdout, synthetic)
            result.scores = {k: float(v) for k, v in report.scores.items()}
            stored = catalog.storage.put_named(REPORTS_DIR, report.to_html().encode(), ".html")
            result.report_uri = stored.uri
            info.update(report_uri=stored.uri, sections=spec.evaluate.metrics())
        with self.stage("gate") as info:
            result.gates = check_gates(spec, result.scores, validation, model.privacy_spent)
            failed = result.failed_gates()
            info.update(passed=not failed, failed=[g.gate for g in failed])
            if failed:
                info["status"] = "failed"
        if failed:
            result.status = "gate_failed"
            result.error = "gate(s) failed: " + "; ".join(f"{g.gate}: {g.detail}" for g in failed)
            result.stages["export"] = {"status": "skipped", "seconds": 0.0}
            return
        with self.stage("export") as info:
            relation = "augmented_from" if spec.produce.augment else "sampled_from"
            validation_doc = validation.to_dict() | {"suite": suite}
            exported = catalog.export(
                output,
                spec.export.name,
                parents=[Parent(source.ref, relation)],
                report=report,
                validation=validation_doc,
                schema=None,
                owner=spec.export.owner,
                tags=spec.export.tags,
                description=spec.export.description
                or f"{spec.model.backend} {'augmentation' if spec.produce.augment else 'sample'} "
                f"of {source.ref} (job {spec.name})",
                model_id=model_id,
                job_run_id=result.run_id,
            )
            result.dataset = exported.dataset
            info.update(dataset=exported.dataset.ref, created=exported.created)
        result.status = "succeeded"

    def _evaluate(
        self,
        model: Any,
        train: pd.DataFrame,
        holdout: pd.DataFrame | None,
        synthetic: pd.DataFrame,
    ) -> Any:
        """The report of what is exported.

        Plain samples are scored against the training rows. Augmentation rows belong to
        the classes they top up, so fidelity, privacy and bias compare them with the real
        rows of those classes; utility trains on real + synthetic rows and is scored
        against real-only training on the holdout (``utility.aug_gain_*``).
        """
        from evaluation import evaluate

        spec = self.spec
        augment = spec.produce.augment
        metrics = spec.evaluate.metrics()
        common = {"schema": model.schema, "seed": spec.seed, "dp": model.privacy_spent}
        sensitive = spec.evaluate.sensitive or None
        if augment is None:
            return evaluate(
                real=train, synthetic=synthetic, holdout=holdout, target=spec.evaluate.target,
                sensitive=sensitive, metrics=metrics, **common,
            )  # fmt: skip
        target = augment.target
        classes = set(synthetic[target].dropna().astype(str))
        in_classes = train[target].astype(str).isin(classes)
        held = holdout[holdout[target].astype(str).isin(classes)] if holdout is not None else None
        report = evaluate(
            real=train[in_classes].reset_index(drop=True), synthetic=synthetic,
            holdout=held.reset_index(drop=True) if held is not None and len(held) else None,
            sensitive=sensitive, metrics=[m for m in metrics if m != "utility"], **common,
        )  # fmt: skip
        if "utility" in metrics:
            utility = evaluate(
                real=train, synthetic=synthetic, holdout=holdout, target=target,
                metrics=["utility"], utility_augmentation=True, **common,
            )  # fmt: skip
            report.scores.update(
                {k: v for k, v in utility.scores.items() if k.startswith("utility.")}
            )
            report.details.update(utility.details)
        report.meta["augmentation"] = {
            "target": target,
            "classes": sorted(classes),
            "note": "fidelity, privacy and bias: synthetic rows vs real rows of these classes; "
            "utility: real + synthetic training vs real-only (aug_gain)",
        }
        return report

    def _fit_options(self, train: Any) -> dict[str, Any]:
        """Keyword arguments of ``model.fit`` besides the data (image jobs pass the schema)."""
        return {}

    def _fit(self, train: pd.DataFrame, source: DatasetInfo) -> tuple[Any, int, bool]:
        spec, catalog = self.spec, self.catalog
        key = spec.model_key(source.digest)
        cached = catalog.cached_model(key)
        if cached is not None:
            return catalog.load_model(cached["id"]), cached["id"], True
        model = build_model(spec)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.synth"
            if model.dp is not None:
                model_id = catalog.train_private(
                    source.name,
                    model,
                    train,
                    model_path=path,
                    label=f"job {spec.name} run {self.result.run_id}: {spec.model.backend}",
                    job_run_id=self.result.run_id,
                    cache_key=key,
                    **self._fit_options(train),
                )
            else:
                model.fit(train, **self._fit_options(train))
                model.save(str(path))
                model_id = catalog.record_model(
                    model,
                    source=source.ref,
                    model_path=path,
                    job_run_id=self.result.run_id,
                    cache_key=key,
                )
        return model, model_id, False

    def _sample(self, model: Any, train: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(synthetic rows, the table to export: the same, or train + synthetic)."""
        spec = self.spec
        augment = spec.produce.augment
        if augment is None:
            rows = spec.produce.rows or len(train)
            parts = self.partition_map(model, partition_plan(rows, spec.seed))
            synthetic = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
            return synthetic, synthetic
        from synthgen.augment import augment as augment_table

        strategy: Any = "balance"
        if augment.counts is not None:
            labels = {str(v): v for v in train[augment.target].dropna().unique()}
            unknown = [k for k in augment.counts if k not in labels]
            if unknown:
                raise ConfigError(
                    f"produce.augment.counts: {unknown} are not classes of {augment.target!r}; "
                    f"classes: {sorted(labels)}"
                )
            strategy = {labels[k]: v for k, v in augment.counts.items()}
        output = augment_table(
            train, model, augment.target, strategy=strategy, ratio=augment.ratio,
            indicator="is_synthetic", seed=spec.seed + 1,
        )  # fmt: skip
        synthetic = output[output["is_synthetic"]].drop(columns="is_synthetic")
        return synthetic.reset_index(drop=True), output


def run_job(
    spec: JobSpec | str | Path,
    *,
    catalog: Catalog | None = None,
    catalog_url: str | None = None,
    reporter: Reporter | None = None,
    partition_map: PartitionMap | None = None,
) -> JobResult:
    """Run a job spec (object or YAML path) end to end; see ``JobRunner`` (an image job:
    ``pipelines.images.runner.ImageJobRunner``, which samples in one process)."""
    from pipelines.images.spec import ImageJobSpec

    if not isinstance(spec, JobSpec | ImageJobSpec):
        spec = load_spec(spec)
    runner_class: type[JobRunner] = JobRunner
    if isinstance(spec, ImageJobSpec):
        from pipelines.images.runner import ImageJobRunner

        runner_class = ImageJobRunner
    if catalog is not None:
        return runner_class(spec, catalog, reporter, partition_map).run()
    with Catalog(catalog_url) as opened:
        return runner_class(spec, opened, reporter, partition_map).run()
