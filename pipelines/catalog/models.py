"""The catalog's tables (SQLAlchemy 2 ORM).

One row per immutable dataset version, with what an auditor asks about it hanging off
it: where it came from (lineage), the model that made it, its evaluation reports and
validation results, and, for source datasets, a privacy budget with every charge made
against it. JSON documents (schemas, profiles, scores, GX results) are stored as JSON
columns: the catalog keeps them whole and never queries inside them.

The migration in ``migrations/versions`` creates exactly these tables; a test compares
the two with Alembic's autogenerate so they cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

#: Constraint names fixed by convention, so migrations can refer to them on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every database (SQLite drops the zone on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("catalog timestamps must be timezone-aware")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Setting(Base):
    """Catalog-wide settings fixed at creation (the storage root)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class JobRun(Base):
    """One execution of a job: its spec, status, timing of each stage and error."""

    __tablename__ = "job_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="running")
    stages: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Dataset(Base):
    """One immutable version of a named dataset; the data file is content-addressed."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("namespace", "name", "version", name="uq_datasets_version"),
        UniqueConstraint("namespace", "name", "digest", name="uq_datasets_digest"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(20), default="parquet")
    row_count: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
    schema_json: Mapped[dict[str, Any]] = mapped_column("schema", JSON)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(20), default="active")
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"), nullable=True)

    parents: Mapped[list[Lineage]] = relationship(
        foreign_keys="Lineage.child_id", back_populates="child", cascade="all, delete-orphan"
    )
    reports: Mapped[list[Report]] = relationship(back_populates="dataset")
    validations: Mapped[list[Validation]] = relationship(back_populates="dataset")

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class Lineage(Base):
    """An edge: ``child`` was made from ``parent`` (trained_on, sampled_from, ...)."""

    __tablename__ = "lineage"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    relation: Mapped[str] = mapped_column(String(40))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), nullable=True)
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"), nullable=True)

    child: Mapped[Dataset] = relationship(foreign_keys=[child_id], back_populates="parents")
    parent: Mapped[Dataset] = relationship(foreign_keys=[parent_id])


class Model(Base):
    """A fitted generator: backend, config, training log, privacy receipt, file."""

    __tablename__ = "models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backend: Mapped[str] = mapped_column(String(40))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    training_log: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    privacy_spent: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: What the model was fitted from and with (source digest + config + seed): a job
    #: with the same key reuses the model instead of training again.
    cache_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"), nullable=True)
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Report(Base):
    """An evaluation report of a dataset: its headline scores and the stored files."""

    __tablename__ = "reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
    json_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    html_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="reports")


class Validation(Base):
    """A great-expectations run on a dataset: success and GX's result document."""

    __tablename__ = "validations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    success: Mapped[bool] = mapped_column(Boolean)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="validations")


class Budget(Base):
    """The privacy budget of a source dataset name (shared by all its versions)."""

    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("namespace", "name", name="uq_budgets_source"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    charges: Mapped[list[Charge]] = relationship(back_populates="budget", order_by="Charge.id")


class Charge(Base):
    """One release charged to a budget: reserved before training, then spent.

    A reservation that never completes (the process died) stays counted: the data may
    already have been used, so the ledger must assume it was.
    """

    __tablename__ = "charges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id"), index=True)
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="reserved")
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), nullable=True)
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    budget: Mapped[Budget] = relationship(back_populates="charges")


def catalog_tables_only(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic filter: only the catalog's own tables. Others in the same database (the
    scheduler's ``apscheduler_jobs``) belong to their libraries and are never touched."""
    return type_ != "table" or name in Base.metadata.tables
