"""Job specs: one YAML file says what a batch job reads, trains, produces, checks and
exports. Validated by pydantic; every error names the field and its line in the file.

```yaml
name: adult_augment
seed: 0
source: {bundled: adult}            # or file: data.csv | catalog: adult@2 | sql: {url, query}
holdout: {fraction: 0.2}
model: {backend: tabular_ar, params: {epochs: 20}, dp: {epsilon: 3}}
produce: {augment: {target: income, balance: true}}     # or rows: 10000
evaluate: {target: income, sensitive: [sex, race]}
gates: {min_fidelity: 0.85, max_mia_auc: 0.6, validation_must_pass: true}
export: {name: adult_augmented, tags: [augmentation], owner: data-team}
schedule: {cron: "0 2 * * *"}
```

A spec whose source is ``images: ...`` is an image job: ``parse_spec`` returns an
``ImageJobSpec`` for it (``pipelines.images.spec``, docs/images.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synthgen.errors import ConfigError

if TYPE_CHECKING:
    from pipelines.images.spec import ImageJobSpec

#: The backend a job (and ``synthgen fit``) uses when none is named: the harness winner
#: on quality per CPU-minute (docs/benchmarks.md).
DEFAULT_BACKEND = "tabular_ar"
#: Backends that only exist under DP (marginal-based: AIM, MST): a job must give model.dp.
PRIVATE_ONLY_BACKENDS = ("aim", "mst")
EVALUATION_SECTIONS = (
    "fidelity",
    "detection",
    "alpha_precision",
    "utility",
    "fid",
    "bias",
    "privacy",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SqlSource(_Strict):
    url: str = Field(description="SQLAlchemy URL of the database to read from")
    query: str = Field(description="SELECT statement whose result is the source table")


class Source(_Strict):
    """Exactly one of ``file``, ``catalog``, ``sql``, ``bundled``."""

    file: str | None = None
    catalog: str | None = None
    sql: SqlSource | None = None
    bundled: str | None = None
    name: str | None = Field(None, description="catalog name the source is registered under")
    na_values: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        given = [k for k in ("file", "catalog", "sql", "bundled") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of file, catalog, sql or bundled"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(
            k for k in ("file", "catalog", "sql", "bundled") if getattr(self, k) is not None
        )


class Holdout(_Strict):
    fraction: float = Field(0.2, gt=0.0, lt=0.9)
    seed: int | None = None


class DPSpec(_Strict):
    epsilon: float = Field(gt=0)
    delta: float | None = Field(None, gt=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    accountant: Literal["rdp", "prv"] = "rdp"
    preprocessing_epsilon: float | None = Field(None, ge=0)

    def config(self) -> Any:
        from privacy.accounting import DPConfig

        return DPConfig(**self.model_dump())


class ModelSpec(_Strict):
    backend: str = DEFAULT_BACKEND
    params: dict[str, Any] = Field(default_factory=dict)
    dp: DPSpec | None = None

    @field_validator("backend")
    @classmethod
    def _known(cls, value: str) -> str:
        from pipelines.images.spec import image_backends
        from synthgen.backends import BACKENDS

        images = image_backends()
        tables = sorted(k for k in BACKENDS if k not in images)
        if value.lower() in images:
            raise ValueError(
                f"backend {value!r} generates images; an image job names its source as "
                "source: {images: ...} (docs/images.md)"
            )
        if value.lower() not in BACKENDS:
            raise ValueError(f"unknown backend {value!r}; available: {', '.join(tables)}")
        return value.lower()

    @model_validator(mode="after")
    def _private_only(self) -> ModelSpec:
        if self.backend in PRIVATE_ONLY_BACKENDS and self.dp is None:
            raise ValueError(
                f"backend {self.backend!r} is differentially private by construction: give "
                "its budget as model.dp, e.g. dp: {epsilon: 1}"
            )
        return self


class Augment(_Strict):
    target: str
    balance: bool = False
    counts: dict[str, int] | None = None
    ratio: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _strategy(self) -> Augment:
        if self.balance == (self.counts is not None):
            raise ValueError("give balance: true or counts: {class: rows}, one of them")
        return self


class Produce(_Strict):
    """``rows`` synthetic rows (default: as many as the training split), or ``augment``."""

    rows: int | None = Field(None, ge=1)
    augment: Augment | None = None

    @model_validator(mode="after")
    def _one(self) -> Produce:
        if self.rows is not None and self.augment is not None:
            raise ValueError("give rows or augment, not both")
        return self


class Evaluate(_Strict):
    target: str | None = None
    sensitive: list[str] = Field(default_factory=list)
    sections: list[str] | None = None

    @field_validator("sections")
    @classmethod
    def _sections(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            unknown = [s for s in value if s not in EVALUATION_SECTIONS]
            if unknown:
                raise ValueError(
                    f"unknown section(s) {unknown}; choose from {list(EVALUATION_SECTIONS)}"
                )
        return value

    def metrics(self) -> list[str]:
        if self.sections is not None:
            return list(self.sections)
        chosen = ["fidelity", "privacy"]
        if self.target:
            chosen.append("utility")
        if self.sensitive:
            chosen.append("bias")
        return chosen


class Gates(_Strict):
    min_fidelity: float | None = Field(None, ge=0, le=1)
    max_mia_auc: float | None = Field(None, ge=0, le=1)
    validation_must_pass: bool = True
    max_epsilon: float | None = Field(None, gt=0)
    max_bias_gap_widening: float | None = Field(None, ge=0)


class Export(_Strict):
    name: str
    tags: list[str] = Field(default_factory=list)
    owner: str | None = None
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        from pipelines.catalog.catalog import check_name

        try:
            return check_name(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


class Schedule(_Strict):
    cron: str


class Resources(_Strict):
    """What one run needs from an executor (Ray reserves it)."""

    cpus: float = Field(1.0, gt=0)
    gpus: float = Field(0.0, ge=0)


class JobSpec(_Strict):
    name: str
    seed: int = 0
    source: Source
    holdout: Holdout | None = Field(default_factory=Holdout)
    model: ModelSpec = Field(default_factory=ModelSpec)
    produce: Produce = Field(default_factory=Produce)
    evaluate: Evaluate = Field(default_factory=Evaluate)
    gates: Gates = Field(default_factory=Gates)
    export: Export
    schedule: Schedule | None = None
    resources: Resources = Field(default_factory=Resources)
    #: Folder relative paths in the spec are resolved against (the spec file's folder).
    base_dir: str = Field(".", exclude=True)

    @field_validator("name")
    @classmethod
    def _job_name(cls, value: str) -> str:
        from pipelines.catalog.catalog import check_name

        try:
            return check_name(value, "job name")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        augment = self.produce.augment
        if augment is not None and self.evaluate.target not in (None, augment.target):
            raise ValueError(
                f"evaluate.target {self.evaluate.target!r} differs from produce.augment.target "
                f"{augment.target!r}"
            )
        if augment is not None and self.gates.max_bias_gap_widening is not None:
            raise ValueError(
                "gates.max_bias_gap_widening compares models trained on real and on synthetic "
                "rows; an augmentation job has no synthetic-only model. Remove the gate, or "
                "produce rows instead"
            )
        if self.gates.max_epsilon is not None and self.model.dp is None:
            raise ValueError(
                "gates.max_epsilon needs model.dp (a model trained without DP has no epsilon)"
            )
        if (
            self.gates.max_epsilon is not None
            and self.model.dp is not None
            and self.model.dp.epsilon > self.gates.max_epsilon
        ):
            raise ValueError(
                f"model.dp.epsilon {self.model.dp.epsilon:g} is above gates.max_epsilon "
                f"{self.gates.max_epsilon:g}; lower the epsilon or raise the gate"
            )
        return self

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else (Path(self.base_dir) / p)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def model_key(self, source_digest: str) -> str:
        """Cache key of the fitted model: same source content, split and model config."""
        payload = {
            "source": source_digest,
            "holdout": self.holdout.model_dump() if self.holdout else None,
            "seed": self.seed,
            "model": self.model.model_dump(mode="json"),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------- loading
def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the YAML node at pydantic's error location, or its nearest parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _describe(error: dict[str, Any], root: yaml.Node | None, where: str) -> str:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    field = ".".join(str(p) for p in loc) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field (check its spelling and the docs/jobs.md reference)"
    elif error["type"] == "missing":
        message = "required field is missing"
    line = _line_of(root, loc)
    at = f"{where}, line {line}" if line else where
    return f"{at}: {field}: {message}"


def parse_spec(
    text: str, *, where: str = "job spec", base_dir: str | Path = "."
) -> JobSpec | ImageJobSpec:
    """Parse and validate a job spec from YAML text (an image job: ``ImageJobSpec``)."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}{line}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a job spec is a YAML mapping with name, source and export")
    from pipelines.images.spec import ImageJobSpec, is_image_spec

    kind = ImageJobSpec if is_image_spec(data) else JobSpec
    try:
        return kind.model_validate({**data, "base_dir": str(base_dir)})
    except ValidationError as exc:
        problems = [_describe(e, root, where) for e in exc.errors()]
        raise ConfigError("; ".join(problems)) from None


def load_spec(path: str | Path) -> JobSpec | ImageJobSpec:
    """Read a job spec file; relative paths inside it are relative to its folder."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"job spec {str(p)!r} does not exist; check the path")
    return parse_spec(p.read_text(), where=str(p), base_dir=p.resolve().parent)
