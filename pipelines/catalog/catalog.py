"""The catalog: immutable dataset versions with lineage, models, reports, validation
results, job runs and the privacy ledger, in one SQL database (SQLite or PostgreSQL).

Export is atomic: the data file is written content-addressed under the storage root
(temporary name, fsync, rename) and only then are the catalog rows inserted, all in one
transaction. A crash before the commit leaves at most an unreferenced file (removed by
``gc``), never a dataset row without its file; a crash after it leaves a complete
dataset. Exporting content already stored under the name returns that version.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pipelines.catalog import models as m
from pipelines.catalog.database import CatalogError, open_engine, resolve_url
from pipelines.catalog.ledger import LedgerMixin
from pipelines.catalog.profile import table_profile
from pipelines.catalog.storage import (
    IMAGE_FORMAT,
    MODELS_DIR,
    REPORTS_DIR,
    Storage,
    content_digest,
    encode_images,
    encode_table,
    image_digest,
)
from synthgen.errors import ConfigError, DataError

DEFAULT_NAMESPACE = "synthgen"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
RELATIONS = ("trained_on", "sampled_from", "augmented_from", "derived_from", "holdout_of")
#: Files younger than this are never removed by gc: an export may be about to commit them.
GC_MIN_AGE_SECONDS = 3600.0
#: Advisory lock between gc (exclusive) and export commits (shared) on PostgreSQL.
STORAGE_LOCK = "storage:gc"


def check_name(name: object, what: str = "dataset name") -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(
            f"{what} {name!r} is not valid; use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit (e.g. adult_synth)"
        )
    return name


def parse_ref(ref: object) -> tuple[str, int | None]:
    """``"name"`` -> (name, None: the latest); ``"name@3"`` -> (name, 3)."""
    if not isinstance(ref, str):
        raise ConfigError(f"dataset reference {ref!r} must be a string like adult or adult@2")
    name, sep, version = ref.partition("@")
    check_name(name)
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ConfigError(
            f"dataset reference {ref!r}: the version after '@' must be a positive integer, "
            f"e.g. {name}@1"
        )
    return name, int(version)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class DatasetInfo:
    """A detached snapshot of one dataset version (safe to use after the session)."""

    id: int
    namespace: str
    name: str
    version: int
    digest: str
    uri: str
    format: str
    row_count: int
    bytes: int
    created_at: str
    owner: str | None
    tags: list[str]
    description: str | None
    state: str
    schema: dict[str, Any] = field(repr=False)
    profile: dict[str, Any] = field(repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def modality(self) -> str:
        """``"images"`` for an image set (Parquet of PNGs), else ``"table"``."""
        return "images" if self.format == IMAGE_FORMAT else "table"

    @classmethod
    def of(cls, row: m.Dataset) -> DatasetInfo:
        return cls(
            id=row.id,
            namespace=row.namespace,
            name=row.name,
            version=row.version,
            digest=row.digest,
            uri=row.uri,
            format=row.format,
            row_count=int(row.row_count),
            bytes=int(row.bytes),
            created_at=_iso(row.created_at) or "",
            owner=row.owner,
            tags=list(row.tags or []),
            description=row.description,
            state=row.state,
            schema=row.schema_json,
            profile=row.profile,
        )

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        out = {
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "uri": self.uri,
            "format": self.format,
            "row_count": self.row_count,
            "bytes": self.bytes,
            "created_at": self.created_at,
            "owner": self.owner,
            "tags": self.tags,
            "description": self.description,
            "state": self.state,
        }
        if full:
            out["schema"] = self.schema
            out["profile"] = self.profile
        return out


@dataclass(frozen=True)
class ExportResult:
    dataset: DatasetInfo
    created: bool  # False: identical content was already stored under this name


@dataclass(frozen=True)
class Parent:
    """An upstream dataset of an export and how the export relates to it."""

    ref: str
    relation: str = "sampled_from"


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default, allow_nan=False))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _finite_scores(scores: Mapping[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, value in scores.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        out[str(key)] = number if number == number and abs(number) != float("inf") else None
    return out


def _is_image_report(report: Any) -> bool:
    from evaluation.images.report import ImageReport

    return isinstance(report, ImageReport)


def _report_from_dict(data: dict[str, Any]) -> Any:
    """An ``EvaluationReport``, or an ``ImageReport`` when the dict is one."""
    from evaluation.images.report import FORMAT as IMAGE_REPORT_FORMAT
    from evaluation.images.report import ImageReport
    from evaluation.report import EvaluationReport

    if data.get("format") == IMAGE_REPORT_FORMAT:
        return ImageReport.from_dict(data)
    return EvaluationReport.from_dict(data)


def _extractor_bytes(extractor: Any) -> bytes:
    """A fitted ``ImageFeatureExtractor`` as its file's bytes (the safe model format)."""
    import tempfile

    from evaluation.images.extractor import ImageFeatureExtractor

    if not isinstance(extractor, ImageFeatureExtractor):
        raise ConfigError(
            f"extractor must be an evaluation.images ImageFeatureExtractor, got "
            f"{type(extractor).__name__}"
        )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "extractor.synth"
        extractor.save(path)
        return path.read_bytes()


class Catalog(LedgerMixin):
    """The catalog on one database and one storage root.

    ``Catalog()`` opens ``SYNTHGEN_CATALOG_URL`` or ``./synthgen.db``; its storage root
    is fixed when the catalog is created (``storage=``, ``SYNTHGEN_STORAGE``, or a folder
    ``synthgen-store`` beside the SQLite file / the working directory) and stored in it,
    so every later process finds the files.
    """

    def __init__(
        self,
        url: str | None = None,
        storage: str | os.PathLike | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        self.url = resolve_url(url)
        self.namespace = check_name(namespace, "namespace")
        self.engine = open_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.storage = Storage(self._storage_root(storage))

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction (serialised on SQLite, see ``database``)."""
        with self._sessions.begin() as session:
            yield session

    def _lock(self, session: Session, key: str, *, shared: bool = False) -> None:
        """Serialise writers of ``key`` on PostgreSQL (SQLite is serialised already).

        ``shared`` locks exclude only the exclusive holder of the same key: exports
        commit side by side under the shared storage lock, gc deletes under the
        exclusive one.
        """
        if self.engine.dialect.name == "postgresql":
            function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            session.execute(text(f"SELECT {function}(hashtextextended(:k, 0))"), {"k": key})

    def _default_storage(self) -> str:
        env = os.environ.get("SYNTHGEN_STORAGE")
        if env:
            return env
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            return str(Path(parsed.database).expanduser().resolve().parent / "synthgen-store")
        return str(Path("synthgen-store").resolve())

    def _storage_root(self, requested: str | os.PathLike | None) -> str:
        with self.session() as session:
            self._lock(session, "setting:storage_root")  # two processes creating one catalog
            row = session.get(m.Setting, "storage_root")
            if row is None:
                root = Storage(requested or self._default_storage()).url
                session.add(m.Setting(key="storage_root", value=root))
                return root
            if requested is not None and Storage(requested).url != row.value:
                raise CatalogError(
                    f"this catalog keeps its files in {row.value}, not {requested}; omit the "
                    "storage root, or use another catalog database for another root"
                )
            return row.value

    # ------------------------------------------------------------------ lookups
    def _find(self, session: Session, ref: str, namespace: str | None = None) -> m.Dataset:
        name, version = parse_ref(ref)
        ns = namespace or self.namespace
        query = select(m.Dataset).where(m.Dataset.namespace == ns, m.Dataset.name == name)
        if version is None:
            query = query.order_by(m.Dataset.version.desc()).limit(1)
        else:
            query = query.where(m.Dataset.version == version)
        row = session.scalars(query).first()
        if row is None:
            known = session.scalars(
                select(m.Dataset.version).where(m.Dataset.namespace == ns, m.Dataset.name == name)
            ).all()
            if known:
                raise DataError(
                    f"dataset {name!r} has no version {version}; its versions are {sorted(known)}"
                )
            raise DataError(
                f"dataset {name!r} is not in the catalog; list them with `synthgen catalog "
                f"list`, or export it first: synthgen export data.csv --name {name}"
            )
        return row

    def get(self, ref: str) -> DatasetInfo:
        with self.session() as session:
            return DatasetInfo.of(self._find(session, ref))

    def list(self, name: str | None = None, *, all_versions: bool = True) -> list[DatasetInfo]:
        """Dataset versions, by name then version (only the latest of each if asked)."""
        with self.session() as session:
            query = select(m.Dataset).where(m.Dataset.namespace == self.namespace)
            if name is not None:
                query = query.where(m.Dataset.name == check_name(name))
            rows = session.scalars(query.order_by(m.Dataset.name, m.Dataset.version)).all()
            infos = [DatasetInfo.of(r) for r in rows]
        if not all_versions:
            latest: dict[str, DatasetInfo] = {}
            for info in infos:
                latest[info.name] = info
            infos = list(latest.values())
        return infos

    def read(self, ref: str) -> pd.DataFrame:
        """The data of a dataset version, checked against its digest."""
        info = self.get(ref)
        if info.modality == "images":
            raise DataError(
                f"{info.ref} is an image dataset ({info.row_count} images), not a table; read "
                "it with Catalog.read_images, or use it as source: {images: {catalog: ...}} "
                "in an image job"
            )
        df = self.storage.read_table(info.uri)
        if content_digest(df) != info.digest:
            raise DataError(
                f"the file of {info.ref} ({info.uri}) does not match its digest: it was "
                "changed or damaged outside synthgen; restore it from a backup"
            )
        return df

    # ------------------------------------------------------------------ export
    def export(
        self,
        data: pd.DataFrame,
        name: str,
        *,
        parents: Sequence[Parent | str] = (),
        report: Any = None,
        validation: Any = None,
        schema: Any = None,
        owner: str | None = None,
        tags: Iterable[str] = (),
        description: str | None = None,
        model_id: int | None = None,
        job_run_id: int | None = None,
    ) -> ExportResult:
        """Store ``data`` as the next version of ``name`` (or return the identical one).

        ``parents`` are catalog references (``"adult"``, ``Parent("adult@2",
        "augmented_from")``); ``report`` an ``EvaluationReport``, its dict or the path of
        its JSON; ``validation`` a ``pipelines.validation.ValidationResult`` or its dict.
        """
        check_name(name)
        if not isinstance(data, pd.DataFrame):
            raise DataError(
                f"export needs a pandas DataFrame, got {type(data).__name__}; read the file "
                "with pandas first"
            )
        if data.shape[1] == 0:
            raise DataError(f"dataset {name!r}: the table has no columns; nothing to export")
        if data.columns.duplicated().any():
            dupes = data.columns[data.columns.duplicated()].tolist()
            raise DataError(f"dataset {name!r}: duplicate column name(s) {dupes}; rename them")
        data = data.reset_index(drop=True)
        data.columns = [str(c) for c in data.columns]
        edges = [p if isinstance(p, Parent) else Parent(str(p)) for p in parents]
        for edge in edges:
            if edge.relation not in RELATIONS:
                raise ConfigError(
                    f"relation {edge.relation!r} to {edge.ref!r} is not one of {list(RELATIONS)}"
                )
        tag_list = sorted({check_name(t, "tag") for t in tags})
        schema_dict = self._schema_dict(data, schema)
        report_row = self._report_payload(report) if report is not None else None
        validation_row = self._validation_payload(validation) if validation is not None else None
        encoded, data, digest = encode_table(data)
        return self._store_version(
            name,
            encoded,
            digest,
            fmt="parquet",
            row_count=len(data),
            schema_dict=schema_dict,
            profile_of=lambda: table_profile(data),
            edges=edges,
            tag_list=tag_list,
            report_row=report_row,
            validation_row=validation_row,
            owner=owner,
            description=description,
            model_id=model_id,
            job_run_id=job_run_id,
        )

    def export_images(
        self,
        images: Any,
        name: str,
        *,
        parents: Sequence[Parent | str] = (),
        report: Any = None,
        validation: Any = None,
        extractor: Any = None,
        owner: str | None = None,
        tags: Iterable[str] = (),
        description: str | None = None,
        model_id: int | None = None,
        job_run_id: int | None = None,
    ) -> ExportResult:
        """Store an ``ImageSet`` as the next version of ``name`` (or return the identical one).

        The same rules as ``export``: a content-addressed, immutable Parquet file (PNG
        bytes and class names, the ``synthgen.images`` format) written before the rows,
        lineage, report (an ``ImageReport`` too) and validation in one transaction. The
        image schema is the version's schema. ``extractor`` (the
        ``ImageFeatureExtractor`` the report was computed with) is stored under its
        digest and recorded in the version's profile, so later runs can score against
        the same feature space (``image_extractor``).
        """
        from pipelines.images.catalog import extractor_entry, image_profile
        from synthgen.images import ImageSet

        check_name(name)
        if not isinstance(images, ImageSet):
            raise DataError(
                f"export_images needs a synthgen ImageSet, got {type(images).__name__}; build "
                "one with ImageSet.from_arrays, from_folder or from_parquet"
            )
        if len(images) == 0:
            raise DataError(f"dataset {name!r}: the image set is empty; nothing to export")
        edges = [p if isinstance(p, Parent) else Parent(str(p)) for p in parents]
        for edge in edges:
            if edge.relation not in RELATIONS:
                raise ConfigError(
                    f"relation {edge.relation!r} to {edge.ref!r} is not one of {list(RELATIONS)}"
                )
        tag_list = sorted({check_name(t, "tag") for t in tags})
        report_row = self._report_payload(report) if report is not None else None
        validation_row = self._validation_payload(validation) if validation is not None else None
        encoded, stored_set, digest = encode_images(images)
        entry, extractor_bytes = None, None
        if extractor is not None:
            extractor_bytes = _extractor_bytes(extractor)
            path = self.storage.extractor_path(extractor.digest)
            entry = extractor_entry(extractor, self.storage.uri_of(path))

        def store_extractor() -> str:
            return self.storage.put_extractor(extractor_bytes, extractor.digest).uri

        return self._store_version(
            name,
            encoded,
            digest,
            fmt=IMAGE_FORMAT,
            row_count=len(stored_set),
            schema_dict=stored_set.schema.to_dict(),
            profile_of=lambda: image_profile(stored_set, entry),
            edges=edges,
            tag_list=tag_list,
            report_row=report_row,
            validation_row=validation_row,
            owner=owner,
            description=description,
            model_id=model_id,
            job_run_id=job_run_id,
            companion=store_extractor if extractor is not None else None,
        )

    def read_images(self, ref: str) -> Any:
        """The ``ImageSet`` of an image dataset version, checked against its digest."""
        info = self.get(ref)
        if info.modality != "images":
            raise DataError(
                f"{info.ref} is a table ({info.row_count} rows), not an image dataset; read it "
                "with Catalog.read"
            )
        images = self.storage.read_images(info.uri)
        if image_digest(images) != info.digest:
            raise DataError(
                f"the file of {info.ref} ({info.uri}) does not match its digest: it was "
                "changed or damaged outside synthgen; restore it from a backup"
            )
        return images

    def image_extractor(self, ref: str) -> Any:
        """The ``ImageFeatureExtractor`` an image dataset version was evaluated with."""
        import tempfile

        from evaluation.images.extractor import ImageFeatureExtractor

        info = self.get(ref)
        entry = (info.profile.get("images") or {}).get("extractor") if info.profile else None
        if info.modality != "images" or not entry:
            raise DataError(
                f"{info.ref} has no stored image feature extractor (it is not an image "
                "dataset, or it was exported without an evaluation); give the extractor's "
                "file instead"
            )
        data = self.storage.read_bytes(entry["uri"])
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "extractor.synth"
            path.write_bytes(data)
            extractor = ImageFeatureExtractor.load(path)
        if extractor.digest != entry["digest"]:
            raise DataError(
                f"the feature extractor of {info.ref} ({entry['uri']}) does not match its "
                "digest: it was changed outside synthgen"
            )
        return extractor

    def _store_version(
        self,
        name: str,
        encoded: bytes,
        digest: str,
        *,
        fmt: str,
        row_count: int,
        schema_dict: dict[str, Any],
        profile_of: Callable[[], dict[str, Any]],
        edges: Sequence[Parent],
        tag_list: list[str],
        report_row: dict[str, Any] | None,
        validation_row: dict[str, Any] | None,
        owner: str | None,
        description: str | None,
        model_id: int | None,
        job_run_id: int | None,
        companion: Callable[[], str] | None = None,
    ) -> ExportResult:
        """Write the data file, then commit the version row with its lineage, report and
        validation in one transaction (shared by tables and image sets).

        ``companion`` stores a file the version refers to (an image set's feature
        extractor) and returns its URI; it is called again under the storage lock if a
        gc removed it meanwhile, like the data file.
        """
        # Parents must exist before anything is written.
        with self.session() as session:
            parent_ids = [(self._find(session, e.ref).id, e.relation) for e in edges]
            known = self._by_digest(session, name, digest) is not None
        # Identical content is not stored again, but a new report or validation is kept.
        stored = None if known else self.storage.put_table(encoded, digest)
        companion_uri = None if known or companion is None else companion()
        report_files = self._store_report(report_row)
        profile = profile_of()

        def attach(session: Session, dataset_id: int) -> None:
            if report_row is not None:
                session.add(m.Report(dataset_id=dataset_id, **report_row, **report_files))
            if validation_row is not None:
                session.add(m.Validation(dataset_id=dataset_id, **validation_row))

        for attempt in range(5):
            try:
                with self.session() as session:
                    self._lock(session, STORAGE_LOCK, shared=True)
                    self._lock(session, f"dataset:{self.namespace}/{name}")
                    existing = self._by_digest(session, name, digest)
                    if existing is not None:
                        attach(session, existing.id)
                        return ExportResult(DatasetInfo.of(existing), created=False)
                    if stored is None or not self.storage.exists(stored.uri):
                        # A gc removed the file since it was written (it was an orphan until
                        # now): no gc can run while this transaction holds the storage lock.
                        stored = self.storage.put_table(encoded, digest)
                    if companion is not None and (
                        companion_uri is None or not self.storage.exists(companion_uri)
                    ):
                        companion_uri = companion()
                    latest = session.scalar(
                        select(func.max(m.Dataset.version)).where(
                            m.Dataset.namespace == self.namespace, m.Dataset.name == name
                        )
                    )
                    row = m.Dataset(
                        namespace=self.namespace,
                        name=name,
                        version=(latest or 0) + 1,
                        digest=digest,
                        uri=stored.uri,
                        format=fmt,
                        row_count=row_count,
                        bytes=stored.bytes,
                        schema_json=schema_dict,
                        profile=profile,
                        owner=owner,
                        tags=tag_list,
                        description=description,
                        state="active",
                        job_run_id=job_run_id,
                    )
                    session.add(row)
                    session.flush()
                    for parent_id, relation in parent_ids:
                        session.add(
                            m.Lineage(
                                child_id=row.id,
                                parent_id=parent_id,
                                relation=relation,
                                model_id=model_id,
                                job_run_id=job_run_id,
                            )
                        )
                    attach(session, row.id)
                    session.flush()
                    return ExportResult(DatasetInfo.of(row), created=True)
            except IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _by_digest(self, session: Session, name: str, digest: str) -> m.Dataset | None:
        return session.scalars(
            select(m.Dataset).where(
                m.Dataset.namespace == self.namespace,
                m.Dataset.name == name,
                m.Dataset.digest == digest,
            )
        ).first()

    @staticmethod
    def _schema_dict(data: pd.DataFrame, schema: Any) -> dict[str, Any]:
        from synthgen.schema import Schema

        if schema is None:
            return Schema.infer(data).to_dict()
        if isinstance(schema, Schema):
            return schema.to_dict()
        if isinstance(schema, Mapping):
            return Schema.from_dict(dict(schema)).to_dict()
        raise ConfigError(
            f"schema must be a synthgen Schema or its dict, got {type(schema).__name__}"
        )

    @staticmethod
    def _report_payload(report: Any) -> dict[str, Any]:
        from evaluation.report import EvaluationReport

        if isinstance(report, str | os.PathLike):
            path = Path(report)
            if not path.is_file():
                raise DataError(
                    f"report file {path} does not exist; write it with --out report.json"
                )
            try:
                report = EvaluationReport.from_json(path)
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(
                    f"report file {path} is not an evaluation report JSON ({exc}); write one "
                    "with synthgen evaluate ... --out report.json"
                ) from exc
        elif isinstance(report, Mapping):
            report = _report_from_dict(dict(report))
        if _is_image_report(report):
            return {"scores": _finite_scores(report.scores), "_report": report}
        if not isinstance(report, EvaluationReport):
            raise ConfigError(
                f"report must be an EvaluationReport, its dict or a JSON path, got "
                f"{type(report).__name__}"
            )
        return {"scores": _finite_scores(report.scores), "_report": report}

    def _store_report(self, payload: dict[str, Any] | None) -> dict[str, Any]:
        if payload is None:
            return {}
        report = payload.pop("_report")
        json_file = self.storage.put_named(REPORTS_DIR, report.to_json().encode(), ".json")
        html_file = self.storage.put_named(REPORTS_DIR, report.to_html().encode(), ".html")
        return {"json_uri": json_file.uri, "html_uri": html_file.uri}

    @staticmethod
    def _validation_payload(validation: Any) -> dict[str, Any]:
        if hasattr(validation, "to_dict") and hasattr(validation, "success"):
            validation = validation.to_dict()
        if not isinstance(validation, Mapping) or "success" not in validation:
            raise ConfigError(
                "validation must be a pipelines.validation.ValidationResult or its dict "
                "(with a 'success' entry)"
            )
        return {"success": bool(validation["success"]), "result": _json_safe(dict(validation))}

    # ------------------------------------------------------------------ attachments
    def add_report(self, ref: str, report: Any) -> None:
        payload = self._report_payload(report)
        files = self._store_report(payload)
        with self.session() as session:
            session.add(m.Report(dataset_id=self._find(session, ref).id, **payload, **files))

    def add_validation(self, ref: str, validation: Any) -> None:
        payload = self._validation_payload(validation)
        with self.session() as session:
            session.add(m.Validation(dataset_id=self._find(session, ref).id, **payload))

    def reports(self, ref: str) -> list[dict[str, Any]]:
        with self.session() as session:
            row = self._find(session, ref)
            return [
                {
                    "id": r.id,
                    "scores": r.scores,
                    "json_uri": r.json_uri,
                    "html_uri": r.html_uri,
                    "created_at": _iso(r.created_at),
                }
                for r in sorted(row.reports, key=lambda r: r.id)
            ]

    def report_html(self, report_id: int) -> str:
        """The stored HTML of a report, read only from its recorded storage URI."""
        with self.session() as session:
            row = session.get(m.Report, int(report_id))
            if row is None or not row.html_uri:
                raise DataError(f"report {report_id} does not exist or has no HTML page")
            uri = row.html_uri
        return self.storage.read_bytes(uri).decode("utf-8")

    def validations(self, ref: str) -> list[dict[str, Any]]:
        with self.session() as session:
            row = self._find(session, ref)
            return [
                {
                    "id": v.id,
                    "success": v.success,
                    "result": v.result,
                    "created_at": _iso(v.created_at),
                }
                for v in sorted(row.validations, key=lambda v: v.id)
            ]

    def show(self, ref: str) -> dict[str, Any]:
        """Everything about one version: metadata, profile, lineage, reports, validation."""
        info = self.get(ref)
        out = info.to_dict(full=True)
        out["parents"] = self.lineage(info.ref, depth=1)["upstream"]
        out["reports"] = self.reports(info.ref)
        out["validations"] = [
            {k: v[k] for k in ("id", "success", "created_at")}
            | {"failures": v["result"].get("failures", [])}
            for v in self.validations(info.ref)
        ]
        out["models"] = self._models_of(info.id)
        if info.modality == "images":
            from pipelines.images.catalog import image_summary

            out["images"] = image_summary(info.schema, info.profile)
        return out

    def _models_of(self, dataset_id: int) -> list[dict[str, Any]]:
        with self.session() as session:
            ids = session.scalars(
                select(m.Lineage.model_id).where(
                    m.Lineage.child_id == dataset_id, m.Lineage.model_id.is_not(None)
                )
            ).all()
            return [self._model_dict(session.get(m.Model, i)) for i in sorted(set(ids))]

    @staticmethod
    def _model_dict(row: m.Model | None) -> dict[str, Any]:
        if row is None:
            return {}
        return {
            "id": row.id,
            "backend": row.backend,
            "config": row.config,
            "privacy_spent": row.privacy_spent,
            "uri": row.uri,
            "digest": row.digest,
            "created_at": _iso(row.created_at),
        }

    # ------------------------------------------------------------------ lineage
    def lineage(self, ref: str, *, depth: int = 20) -> dict[str, Any]:
        """Upstream and downstream edges of a version, breadth first up to ``depth``."""
        with self.session() as session:
            start = self._find(session, ref)

            def walk(up: bool) -> list[dict[str, Any]]:
                edges, frontier, seen = [], [start.id], {start.id}
                for _ in range(depth):
                    if not frontier:
                        break
                    column = m.Lineage.child_id if up else m.Lineage.parent_id
                    rows = session.scalars(select(m.Lineage).where(column.in_(frontier))).all()
                    frontier = []
                    for edge in sorted(rows, key=lambda e: e.id):
                        edges.append(
                            {
                                "child": edge.child.ref,
                                "parent": edge.parent.ref,
                                "relation": edge.relation,
                                "model_id": edge.model_id,
                                "job_run_id": edge.job_run_id,
                            }
                        )
                        nxt = edge.parent_id if up else edge.child_id
                        if nxt not in seen:
                            seen.add(nxt)
                            frontier.append(nxt)
                return edges

            return {"dataset": start.ref, "upstream": walk(True), "downstream": walk(False)}

    # ------------------------------------------------------------------ models
    def store_model_file(self, path: str | os.PathLike) -> tuple[str, str]:
        """Copy a saved model file into storage; (uri, digest)."""
        data = Path(path).read_bytes()
        stored = self.storage.put_named(MODELS_DIR, data, Path(path).suffix or ".synth")
        return stored.uri, stored.uri.rsplit("/", 1)[-1].split(".")[0]

    def _model_row(
        self,
        model: Any,
        *,
        uri: str | None,
        digest: str | None,
        source_id: int | None,
        job_run_id: int | None,
        cache_key: str | None = None,
    ) -> m.Model:
        config = model.get_params() if hasattr(model, "get_params") else {}
        log = getattr(model, "training_log_", None)
        spent = getattr(model, "privacy_spent", None)
        return m.Model(
            backend=type(model).__name__,
            config=_json_safe({k: v for k, v in config.items() if k != "dp"})
            | ({"dp": model.dp.to_dict()} if getattr(model, "dp", None) is not None else {}),
            training_log=_json_safe(log.to_dict() if hasattr(log, "to_dict") else (log or {})),
            privacy_spent=spent.to_dict() if spent is not None else None,
            uri=uri,
            digest=digest,
            source_id=source_id,
            job_run_id=job_run_id,
            cache_key=cache_key,
        )

    def record_model(
        self,
        model: Any,
        *,
        source: str | None = None,
        model_path: str | os.PathLike | None = None,
        job_run_id: int | None = None,
        cache_key: str | None = None,
    ) -> int:
        """Register a fitted model (not DP: DP models go through ``train_private``)."""
        if getattr(model, "privacy_spent", None) is not None:
            raise ConfigError(
                "a DP model must be recorded with Catalog.train_private, which charges its "
                "source's privacy budget in the same transaction"
            )
        uri, digest = self.store_model_file(model_path) if model_path else (None, None)
        with self.session() as session:
            source_id = self._find(session, source).id if source else None
            row = self._model_row(
                model,
                uri=uri,
                digest=digest,
                source_id=source_id,
                job_run_id=job_run_id,
                cache_key=cache_key,
            )
            session.add(row)
            session.flush()
            return row.id

    def cached_model(self, cache_key: str) -> dict[str, Any] | None:
        """The newest model recorded with ``cache_key`` whose file is stored, if any."""
        with self.session() as session:
            rows = session.scalars(
                select(m.Model)
                .where(m.Model.cache_key == cache_key, m.Model.uri.is_not(None))
                .order_by(m.Model.id.desc())
            ).all()
            found = [self._model_dict(r) for r in rows]
        for entry in found:
            if self.storage.exists(entry["uri"]):
                return entry
        return None

    def load_model(self, model_id: int) -> Any:
        """A stored model, loaded through synthgen's safe model format."""
        import tempfile

        import synthgen as sg

        with self.session() as session:
            row = session.get(m.Model, int(model_id))
            if row is None or not row.uri:
                raise DataError(f"model {model_id} does not exist or has no stored file")
            uri = row.uri
        data = self.storage.read_bytes(uri)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.synth"
            path.write_bytes(data)
            return sg.load_model(str(path))

    # ------------------------------------------------------------------ job runs
    def start_run(self, name: str, spec: Mapping[str, Any] | None = None) -> int:
        with self.session() as session:
            row = m.JobRun(
                name=name, spec=_json_safe(dict(spec or {})), status="running", stages={}
            )
            session.add(row)
            session.flush()
            return row.id

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        stages: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        from pipelines.catalog.models import utcnow

        with self.session() as session:
            row = session.get(m.JobRun, run_id)
            if row is None:
                raise DataError(f"job run {run_id} does not exist")
            row.status = status
            row.stages = _json_safe(dict(stages or {}))
            row.error = error
            row.finished_at = utcnow()

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.session() as session:
            rows = session.scalars(select(m.JobRun).order_by(m.JobRun.id.desc()).limit(limit)).all()
            return [
                {
                    "id": r.id,
                    "name": r.name,
                    "status": r.status,
                    "stages": r.stages,
                    "error": r.error,
                    "started_at": _iso(r.started_at),
                    "finished_at": _iso(r.finished_at),
                }
                for r in rows
            ]

    # ------------------------------------------------------------------ gc
    def referenced_uris(self) -> set[str]:
        with self.session() as session:
            return self._referenced(session)

    @staticmethod
    def _referenced(session: Session) -> set[str]:
        uris = set(session.scalars(select(m.Dataset.uri)).all())
        uris |= {u for u in session.scalars(select(m.Model.uri)).all() if u}
        for json_uri, html_uri in session.execute(select(m.Report.json_uri, m.Report.html_uri)):
            uris |= {u for u in (json_uri, html_uri) if u}
        profiles = session.scalars(
            select(m.Dataset.profile).where(m.Dataset.format == IMAGE_FORMAT)
        ).all()
        for profile in profiles:
            entry = ((profile or {}).get("images") or {}).get("extractor") or {}
            if entry.get("uri"):
                uris.add(entry["uri"])
        return uris

    def gc(self, *, min_age: float = GC_MIN_AGE_SECONDS, dry_run: bool = False) -> list[str]:
        """Remove files no catalog row refers to (crash leftovers) older than ``min_age``."""
        removed = []
        # One transaction holding the exclusive storage lock (SQLite: the write lock): no
        # export commits while gc decides and deletes, and an export re-checks its file
        # under the shared lock before it commits a row pointing at it.
        with self.session() as session:
            self._lock(session, STORAGE_LOCK)
            referenced = {self.storage.path_of(u) for u in self._referenced(session)}
            for path, age in self.storage.files():
                if path in referenced or age < min_age:
                    continue
                removed.append(self.storage.uri_of(path))
                if not dry_run:
                    self.storage.remove(path)
        return removed
