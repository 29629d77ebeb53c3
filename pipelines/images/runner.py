"""Run one image job: load -> fit -> sample -> validate -> evaluate -> gate -> export.

The same runner as for tables (``pipelines.jobs.runner.JobRunner``: stages timed and
recorded in the catalog's job run, errors kept, the fitted model cached under a key of
the source digest and the model config, a DP fit charged to the source's budget before
training, nothing exported unless every gate passes, the report kept either way), with
image sets in place of frames:

- **load**: the source image set (bundled digits, a folder, a Parquet of PNGs or a
  catalog image dataset) is registered in the catalog as an image dataset and read back
  from it (so the model learns exactly the stored 8-bit pixels), then split with a
  stratified holdout (``ImageSet.split``);
- **sample**: ``per_class`` images of every class, each class sampled conditionally
  with its own seed derived from the job seed, or ``images`` drawn unconditionally;
- **validate**: the image gate (``pipelines.images.validation``);
- **evaluate**: ``evaluation.images.evaluate_images`` against the training split (and
  the holdout); the feature extractor it used is exported with the dataset and its
  digest is in the report and the run's stages.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipelines.catalog import Catalog, DatasetInfo, Parent
from pipelines.catalog.storage import REPORTS_DIR
from pipelines.images.spec import SCORE_GATES, ImageJobSpec
from pipelines.jobs.runner import GateResult, JobRunner
from synthgen.errors import ConfigError, DataError


# ---------------------------------------------------------------------- loading
def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in text).strip("_.-") or "images"


def relabel(images: Any, classes: list[str], where: str) -> Any:
    """``images`` with the class list ``classes`` (its order, possibly more classes)."""
    from synthgen.images import ImageSchema, ImageSet

    own = list(images.schema.classes)
    if own == list(classes):
        return images
    missing = [c for c in own if c not in classes and np.any(images.labels == own.index(c))]
    if missing:
        raise DataError(
            f"{where} holds images of class(es) {missing} that source.classes {classes} does "
            "not list; add them to source.classes or remove those images"
        )
    lookup = np.array([classes.index(c) if c in classes else -1 for c in own], dtype=np.int64)
    s = images.schema
    schema = ImageSchema(s.height, s.width, s.channels, tuple(classes))
    return ImageSet(images.images, lookup[images.labels], schema)


def _read_origin(spec: ImageJobSpec, catalog: Catalog) -> tuple[Any, str | None]:
    """The source image set and its default catalog name (None: already in the catalog)."""
    from synthgen.images import ImageSet, load_digits

    origin = spec.source.images
    classes = spec.source.classes
    if origin.kind == "digits":
        return load_digits(origin.digits.size), f"digits{origin.digits.size}"
    if origin.kind == "folder":
        path = spec.resolve(origin.folder)
        return ImageSet.from_folder(path, classes=classes), _safe_name(path.name)
    if origin.kind == "parquet":
        path = spec.resolve(origin.parquet)
        return ImageSet.from_parquet(path), _safe_name(path.stem)
    return catalog.read_images(origin.catalog), None


def load_image_source(spec: ImageJobSpec, catalog: Catalog) -> tuple[Any, DatasetInfo]:
    """The source image set, registered in the catalog (same content, same version)."""
    from pipelines.catalog.catalog import check_name

    images, default_name = _read_origin(spec, catalog)
    classes = spec.source.classes
    if default_name is None:  # a catalog dataset: used as recorded
        info = catalog.get(spec.source.images.catalog)
        if classes is not None and list(images.schema.classes) != list(classes):
            raise DataError(
                f"source.classes {classes} differ from the classes recorded with {info.ref} "
                f"{list(images.schema.classes)}; give the recorded list or another source"
            )
        return images, info
    if classes is not None:
        images = relabel(images, list(classes), "the source")
    name = check_name(spec.source.name or default_name, "source name")
    exported = catalog.export_images(images, name, description=f"source of job {spec.name}")
    return catalog.read_images(exported.dataset.ref), exported.dataset


def split_images(images: Any, spec: ImageJobSpec) -> tuple[Any, Any | None]:
    """(training images, stratified holdout or None)."""
    if spec.holdout is None:
        return images, None
    seed = spec.seed if spec.holdout.seed is None else spec.holdout.seed
    train, holdout = images.split(spec.holdout.fraction, seed=seed)
    if len(train) < 2 or len(holdout) < 1:
        raise DataError(
            f"source has {len(images)} images: too few to hold out {spec.holdout.fraction:.0%}; "
            "use a larger source or holdout: null"
        )
    return train, holdout


def class_seeds(seed: int, n_classes: int) -> list[int]:
    """One sampling seed per class, derived from the job seed (order-independent)."""
    children = np.random.SeedSequence(seed + 1).spawn(n_classes)
    return [int(c.generate_state(1)[0]) for c in children]


# ---------------------------------------------------------------------- gates
def _score_gate(gate: str, threshold: float, scores: dict[str, float]) -> GateResult:
    score, higher_is_better = SCORE_GATES[gate]
    value = scores.get(score, math.nan)
    if value is None or math.isnan(value):
        return GateResult(gate, threshold, None, False, f"{score} was not measured")
    ok = value >= threshold if higher_is_better else value <= threshold
    sign = ">=" if higher_is_better else "<="
    margin = value - threshold
    detail = f"{score} {value:.4g} {sign} {threshold:g} (margin {margin:+.4g})"
    if not ok:
        detail = f"{score} {value:.4g} is not {sign} {threshold:g} (off by {abs(margin):.4g})"
    return GateResult(gate, threshold, value, ok, detail)


def check_image_gates(
    spec: ImageJobSpec, scores: dict[str, float], validation: Any, spent: Any
) -> list[GateResult]:
    """Every gate of the spec, in the order of the spec's fields."""
    gates = spec.gates
    out = [_score_gate(g, t, scores) for g, t in gates.score_gates().items()]
    if gates.max_epsilon is not None:
        value = spent.epsilon if spent is not None else math.nan
        out.append(_score_gate_epsilon(gates.max_epsilon, value))
    if gates.validation_must_pass:
        first = "; ".join(f.message for f in validation.failures[:3])
        detail = (
            "all image checks passed"
            if validation.success
            else f"{len(validation.failures)} check(s) failed: {first}"
        )
        out.append(
            GateResult("validation_must_pass", True, validation.success, validation.success, detail)
        )
    return out


def _score_gate_epsilon(threshold: float, value: float) -> GateResult:
    if value is None or math.isnan(value):
        return GateResult("max_epsilon", threshold, None, False, "the model spent no epsilon")
    ok = value <= threshold
    margin = value - threshold
    detail = f"dp.epsilon {value:.4g} <= {threshold:g} (margin {margin:+.4g})"
    if not ok:
        detail = f"dp.epsilon {value:.4g} is not <= {threshold:g} (off by {abs(margin):.4g})"
    return GateResult("max_epsilon", threshold, value, ok, detail)


# ---------------------------------------------------------------------- the runner
class ImageJobRunner(JobRunner):
    """``JobRunner`` for an ``ImageJobSpec`` (same stages, records and exit codes)."""

    spec: ImageJobSpec

    def _run(self) -> None:
        spec, catalog, result = self.spec, self.catalog, self.result
        with self.stage("load") as info:
            images, source = load_image_source(spec, catalog)
            train, holdout = split_images(images, spec)
            info.update(
                source=source.ref,
                images=len(images),
                train_images=len(train),
                holdout_images=0 if holdout is None else len(holdout),
                classes=images.schema.n_classes,
            )
        with self.stage("fit") as info:
            model, model_id, cached = self._fit(train, source)
            result.model_id = model_id
            info.update(model_id=model_id, cached=cached, backend=spec.model.backend)
            if cached:
                info["status"] = "cached"
            if model.privacy_spent is not None:
                info["epsilon"] = model.privacy_spent.epsilon
        with self.stage("sample") as info:
            synthetic = self._sample_images(model, len(train))
            info.update(images=len(synthetic))
            if spec.produce.per_class is not None:
                info["per_class"] = spec.produce.per_class
        with self.stage("validate") as info:
            from pipelines.images.validation import image_suite, validate_images

            suite = image_suite(
                train.schema,
                count=self._requested(train),
                per_class=spec.produce.per_class,
                require_all_classes=spec.validation.require_all_classes,
            )
            validation = validate_images(synthetic, suite)
            info.update(success=validation.success, failures=len(validation.failures))
        report = None
        with self.stage("evaluate") as info:
            if spec.evaluate.enabled:
                report = self._evaluate_images(model, train, holdout, synthetic)
                result.scores = {k: float(v) for k, v in report.scores.items()}
                stored = catalog.storage.put_named(REPORTS_DIR, report.to_html().encode(), ".html")
                result.report_uri = stored.uri
                extractor = report.extractor
                info.update(
                    report_uri=stored.uri,
                    extractor=extractor.name if extractor is not None else None,
                    extractor_digest=extractor.digest if extractor is not None else None,
                )
            else:
                info["status"] = "skipped"
        with self.stage("gate") as info:
            result.gates = check_image_gates(spec, result.scores, validation, model.privacy_spent)
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
            exported = catalog.export_images(
                synthetic,
                spec.export.name,
                parents=[Parent(source.ref, "sampled_from")],
                report=report,
                validation=validation.to_dict() | {"suite": suite},
                # the extractor is a CNN of the raw images trained without DP: it never
                # travels with a DP release (the report keeps its name and digest)
                extractor=report.extractor
                if report is not None and spec.model.dp is None
                else None,
                owner=spec.export.owner,
                tags=spec.export.tags,
                description=spec.export.description
                or f"{spec.model.backend} sample of {source.ref} (job {spec.name})",
                model_id=self.result.model_id,
                job_run_id=result.run_id,
            )
            result.dataset = exported.dataset
            info.update(dataset=exported.dataset.ref, created=exported.created)
        result.status = "succeeded"

    # ------------------------------------------------------------------ stages
    def _fit_options(self, train: Any) -> dict[str, Any]:
        # the public schema: under DP nothing is read off the images before DP-SGD
        return {"schema": train.schema}

    def _requested(self, train: Any) -> int:
        """How many images the job asked for (what the validation gate expects)."""
        produce = self.spec.produce
        if produce.per_class is not None:
            return produce.per_class * train.schema.n_classes
        return produce.images or len(train)

    def _sample_images(self, model: Any, train_size: int) -> Any:
        """``per_class`` images of every class (conditional), or ``images`` drawn freely."""
        produce, seed = self.spec.produce, self.spec.seed
        if produce.per_class is None:
            return model.sample(produce.images or train_size, seed=seed + 1)
        classes = model.schema.classes
        parts = [
            model.sample(produce.per_class, seed=s, conditions={"label": c})
            for c, s in zip(classes, class_seeds(seed, len(classes)), strict=True)
        ]
        out = parts[0]
        for part in parts[1:]:
            out = out.concat(part)
        return out

    def _evaluate_images(self, model: Any, train: Any, holdout: Any, synthetic: Any) -> Any:
        """The image report (``evaluate_images``) plus the DP receipt when there is one."""
        from evaluation.images import evaluate_images

        spec, evaluate = self.spec, self.spec.evaluate
        extractor: Any = None
        if evaluate.extractor is not None:
            extractor = spec.resolve(evaluate.extractor)
            if not extractor.is_file():
                raise ConfigError(
                    f"evaluate.extractor {str(extractor)!r} does not exist; give the file of "
                    "a saved ImageFeatureExtractor, or leave it out to train one"
                )
        elif evaluate.extractor_from is not None:
            extractor = self.catalog.image_extractor(evaluate.extractor_from)
        weights = spec.resolve(evaluate.inception_weights) if evaluate.inception_weights else None
        if weights is not None and not weights.is_file():
            raise ConfigError(
                f"evaluate.inception_weights {str(weights)!r} does not exist; give the "
                "inception-v3-compat weights file (nothing is downloaded)"
            )
        options = {}
        if evaluate.extractor_epochs is not None:
            options["extractor_epochs"] = evaluate.extractor_epochs
        report = evaluate_images(
            train, synthetic, holdout, extractor=extractor, inception_weights=weights,
            seed=spec.seed, utility=evaluate.utility, **options,
        )  # fmt: skip
        spent = model.privacy_spent
        if spent is not None:
            report.scores["dp.epsilon"] = float(spent.epsilon)
            report.scores["dp.delta"] = float(spent.delta)
            report.meta["dp"] = spent.to_dict()
        report.meta["job"] = {"name": spec.name, "backend": spec.model.backend}
        return report
