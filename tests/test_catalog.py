"""The catalog's behaviour, the same on SQLite and on PostgreSQL (``catalog_url``)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from pipelines.catalog import Catalog, CatalogError, Parent, parse_ref
from pipelines.catalog.database import current_revision, resolve_url
from pipelines.catalog.models import Base, catalog_tables_only
from pipelines.catalog.openlineage import lineage_events, to_json
from pipelines.catalog.storage import Storage, content_digest, encode_table
from privacy.budget import BudgetExceededError
from synthgen.errors import ConfigError, DataError, SynthgenError


def frame(seed: int = 0, n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(17, 90, n),
            "income": rng.normal(50_000, 10_000, n).round(2),
            "sex": rng.choice(["F", "M"], n),
            "note": pd.array(rng.choice(["a", "b", None], n), dtype="string"),
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), "D"),
        }
    )


@pytest.fixture
def catalog(catalog_url, tmp_path):
    with Catalog(catalog_url, tmp_path / "store") as cat:
        yield cat


def test_migrations_create_exactly_the_orm_tables(catalog):
    with catalog.engine.connect() as conn:
        assert current_revision(conn) == "0002"
        context = MigrationContext.configure(conn, opts={"include_name": catalog_tables_only})
        assert compare_metadata(context, Base.metadata) == []


def test_reopening_is_a_no_op_and_keeps_the_storage_root(catalog_url, tmp_path):
    with Catalog(catalog_url, tmp_path / "store") as first:
        first.export(frame(), "adult")
    with Catalog(catalog_url) as again:  # the root comes from the database
        assert again.storage.url == str(tmp_path / "store")
        assert [d.ref for d in again.list()] == ["adult@1"]
    with pytest.raises(CatalogError, match="keeps its files in"):
        Catalog(catalog_url, tmp_path / "elsewhere")


def test_unknown_future_revision_is_refused(catalog):
    with catalog.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(CatalogError, match="newer version"):
        Catalog(catalog.url)


def test_export_versions_and_idempotence(catalog):
    first = catalog.export(frame(0), "adult", owner="ana", tags=["real", "uci"])
    again = catalog.export(frame(0), "adult")
    assert first.created and not again.created
    assert again.dataset.ref == "adult@1" and again.dataset.digest == first.dataset.digest
    second = catalog.export(frame(1), "adult")
    assert second.created and second.dataset.version == 2
    assert [d.ref for d in catalog.list()] == ["adult@1", "adult@2"]
    assert [d.ref for d in catalog.list(all_versions=False)] == ["adult@2"]
    assert catalog.get("adult").version == 2 and catalog.get("adult@1").tags == ["real", "uci"]
    # Identical content with a new validation result: no new version, the result is kept.
    kept = catalog.export(frame(1), "adult", validation={"success": True, "failures": []})
    assert not kept.created and kept.dataset.version == 2
    assert [v["success"] for v in catalog.validations("adult@2")] == [True]
    # Same content under another name: a new dataset, one shared file.
    other = catalog.export(frame(0), "adult_copy")
    assert other.created and other.dataset.uri == first.dataset.uri


def test_read_round_trips_values_and_dtypes(catalog):
    df = frame(3)
    df["text"] = pd.Series(["x", np.nan, None] * 66 + ["y", "z"], dtype=object)
    catalog.export(df, "adult")
    back = catalog.read("adult@1")
    pd.testing.assert_frame_equal(back.drop(columns="text"), df.drop(columns="text"))
    assert back["text"].isna().sum() == df["text"].isna().sum()  # NaN and None: missing
    assert catalog.export(back, "adult").created is False  # what was read is what is stored
    info = catalog.get("adult")
    assert info.row_count == len(df) and info.bytes > 0 and info.format == "parquet"
    assert info.profile["columns"]["age"]["min"] == df["age"].min()
    assert info.profile["columns"]["note"]["null_count"] == int(df["note"].isna().sum())
    assert {c["name"] for c in info.schema["columns"]} == set(df.columns)


def test_read_refuses_a_tampered_file(catalog):
    catalog.export(frame(), "adult")
    info = catalog.get("adult")
    frame(9).to_parquet(info.uri)  # changed behind the catalog's back
    with pytest.raises(DataError, match="does not match its digest"):
        catalog.read("adult")


def test_digest_depends_on_content_only():
    df = frame()
    assert content_digest(df) == content_digest(df.copy())
    changed = df.copy()
    changed.loc[5, "income"] += 0.01
    assert content_digest(changed) != content_digest(df)
    assert content_digest(df.rename(columns={"age": "Age"})) != content_digest(df)
    assert content_digest(df.astype({"age": "float64"})) != content_digest(df)
    assert content_digest(df.iloc[::-1].reset_index(drop=True)) != content_digest(df)


def test_lineage_reports_validation_and_show(catalog, tmp_path):
    from evaluation.report import EvaluationReport

    catalog.export(frame(0), "adult")
    report = EvaluationReport(
        scores={"fidelity.overall": 0.91, "privacy.mia_auc": 0.5, "dp.epsilon": float("nan")},
        details={},
        meta={"target": None},
    )
    path = tmp_path / "report.json"
    report.to_json(path)
    catalog.export(
        frame(1),
        "adult_synth",
        parents=[Parent("adult@1", "sampled_from")],
        report=path,
        validation={"success": True, "failures": []},
        description="TVAE sample",
    )
    catalog.export(
        frame(2), "adult_aug", parents=[Parent("adult_synth", "augmented_from"), "adult"]
    )
    graph = catalog.lineage("adult_aug")
    assert {(e["child"], e["relation"], e["parent"]) for e in graph["upstream"]} == {
        ("adult_aug@1", "augmented_from", "adult_synth@1"),
        ("adult_aug@1", "sampled_from", "adult@1"),
        ("adult_synth@1", "sampled_from", "adult@1"),
    }
    down = catalog.lineage("adult")["downstream"]
    assert {e["child"] for e in down} == {"adult_synth@1", "adult_aug@1"}
    shown = catalog.show("adult_synth")
    assert shown["reports"][0]["scores"] == {
        "fidelity.overall": 0.91,
        "privacy.mia_auc": 0.5,
        "dp.epsilon": None,
    }
    assert shown["validations"][0]["success"] is True
    html = catalog.report_html(shown["reports"][0]["id"])
    assert "<html" in html.lower()
    json.dumps(shown)  # JSON-safe all the way down


def test_openlineage_events(catalog):
    catalog.export(frame(0), "adult")
    catalog.export(frame(1), "adult_synth", parents=["adult"])
    events = json.loads(to_json(lineage_events(catalog, "adult_synth")))
    assert len(events) == 1
    event = events[0]
    assert event["eventType"] == "COMPLETE"
    uuid.UUID(event["run"]["runId"])
    (source,) = event["inputs"]
    (output,) = event["outputs"]
    assert (source["namespace"], source["name"]) == ("synthgen", "adult")
    assert output["name"] == "adult_synth" and output["facets"]["version"]["datasetVersion"] == "1"
    fields = [f["name"] for f in output["facets"]["schema"]["fields"]]
    assert fields == list(frame().columns)
    metrics = output["facets"]["dataQualityMetrics"]["columnMetrics"]
    assert metrics["age"]["min"] == frame(1)["age"].min()
    assert metrics["note"]["nullCount"] == int(frame(1)["note"].isna().sum())
    assert source["inputFacets"]["dataQualityMetrics"]["rowCount"] == 200
    # Deterministic: the same lineage gives the same run id.
    again = json.loads(to_json(lineage_events(catalog, "adult_synth")))
    assert again[0]["run"]["runId"] == event["run"]["runId"]


def test_gc_removes_only_orphans(catalog):
    catalog.export(frame(0), "adult")
    encoded, _, digest = encode_table(frame(5))
    orphan = catalog.storage.put_table(encoded, digest)  # written, never committed
    tmp_left = catalog.storage._join("tmp", "dead.part")
    catalog.storage.fs.pipe(tmp_left, b"half a file")
    assert catalog.gc(min_age=3600) == []  # too young: might be an export in flight
    removed = catalog.gc(min_age=0, dry_run=True)
    assert set(removed) == {orphan.uri, catalog.storage.uri_of(tmp_left)}
    assert catalog.storage.exists(orphan.uri)
    catalog.gc(min_age=0)
    assert not catalog.storage.exists(orphan.uri)
    pd.testing.assert_frame_equal(catalog.read("adult"), frame(0))


def test_ledger_reserve_commit_and_refusal(catalog):
    catalog.export(frame(), "adult")
    with pytest.raises(BudgetExceededError, match="no privacy budget"):
        catalog.reserve("adult", 1.0, 1e-8, "fit")
    catalog.set_budget("adult", 3.0, 1e-6)
    a = catalog.reserve("adult", 2.0, 1e-7, "fit a")
    with pytest.raises(BudgetExceededError, match="only epsilon=1, "):
        catalog.reserve("adult", 1.5, 1e-7, "fit b")
    budget = catalog.budget("adult")
    assert (
        budget["spent_epsilon"] == 2.0 and len(budget["charges"]) == 1
    )  # refusal recorded nothing
    catalog.fail_charge(a, "crashed")
    assert catalog.budget("adult")["remaining_epsilon"] == pytest.approx(1.0)  # still counted
    with pytest.raises(ConfigError, match="already spent"):
        catalog.set_budget("adult", 1.0, 1e-6)
    catalog.set_budget("adult", 5.0, 1e-6)
    assert catalog.budget("adult")["remaining_epsilon"] == pytest.approx(3.0)
    with pytest.raises(ConfigError, match="not a version"):
        catalog.reserve("adult@1", 0.1, 1e-9, "x")


def test_train_private_charges_the_budget_with_the_model(catalog, tmp_path):
    import synthgen as sg
    from privacy import DPConfig

    df = sg.datasets.load("adult").sample(600, random_state=0).reset_index(drop=True)
    catalog.export(df, "adult")
    catalog.set_budget("adult", 2.0)
    model = sg.TabularAR(epochs=1, batch_size=256, seed=0, dp=DPConfig(epsilon=1.5))
    model_id = catalog.train_private("adult", model, model_path=tmp_path / "m.synth")
    budget = catalog.budget("adult")
    (charge,) = budget["charges"]
    assert charge["status"] == "spent" and charge["model_id"] == model_id
    assert charge["epsilon"] == pytest.approx(model.privacy_spent.epsilon)
    assert charge["epsilon"] <= 1.5
    with pytest.raises(BudgetExceededError):  # 1.5 more does not fit in what is left
        catalog.train_private("adult", sg.TabularAR(epochs=1, seed=0, dp=DPConfig(epsilon=1.5)))
    assert len(catalog.budget("adult")["charges"]) == 1
    with pytest.raises(ConfigError, match="dp=None"):
        catalog.train_private("adult", sg.TabularAR(epochs=1))


@pytest.mark.parametrize(
    "ref, message",
    [("", "not valid"), ("../etc", "not valid"), ("a b", "not valid"), ("adult@0", "positive"),
     ("adult@x", "positive"), (3, "must be a string")],
)  # fmt: skip
def test_bad_references(ref, message):
    with pytest.raises(ConfigError, match=message):
        parse_ref(ref)


def test_bad_exports_store_nothing(catalog):
    with pytest.raises(DataError, match="not in the catalog"):
        catalog.export(frame(), "adult_synth", parents=["adult"])
    with pytest.raises(DataError, match="DataFrame"):
        catalog.export([1, 2], "adult")
    with pytest.raises(DataError, match="no columns"):
        catalog.export(pd.DataFrame(), "adult")
    with pytest.raises(ConfigError, match="relation"):
        catalog.export(frame(), "adult", parents=[Parent("x", "stolen_from")])
    with pytest.raises(ConfigError, match="not valid"):
        catalog.export(frame(), "bad/name")
    with pytest.raises(SynthgenError):
        catalog.export(frame(), "adult", report=123)
    assert catalog.list() == []
    assert catalog.storage.files() == []


def test_url_errors(tmp_path):
    with pytest.raises(CatalogError, match="not a database URL"):
        resolve_url("nonsense")
    with pytest.raises(CatalogError, match="sqlite or postgresql"):
        resolve_url("mysql://x@y/z")
    with pytest.raises(CatalogError, match="in-memory"):
        resolve_url("sqlite://")
    with pytest.raises(CatalogError, match="does not exist"):
        resolve_url(f"sqlite:///{tmp_path}/missing/folder/c.db")
    with pytest.raises(CatalogError, match="cannot open the catalog"):
        Catalog("postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_fsspec_storage_root(tmp_path):
    storage = Storage(f"file://{tmp_path}/fs")
    encoded, _, digest = encode_table(frame())
    stored = storage.put_table(encoded, digest)
    pd.testing.assert_frame_equal(storage.read_table(stored.uri), frame())
    memory = Storage("memory://synthgen-test")
    stored = memory.put_table(encoded, digest)
    assert stored.uri.startswith("memory://")
    pd.testing.assert_frame_equal(memory.read_table(stored.uri), frame())
    with pytest.raises(ConfigError, match="outside the catalog's storage root"):
        storage.path_of("/etc/passwd")


def test_upgrade_from_the_first_revision_keeps_the_data(catalog_url, tmp_path):
    from alembic import command

    from pipelines.catalog.database import _alembic_config, open_engine

    engine = open_engine(catalog_url, upgrade=False)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO models (backend, config, training_log, created_at) "
                "VALUES ('TVAE', '{}', '{}', CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
    with Catalog(catalog_url, tmp_path / "store") as cat:  # upgrades on first use
        with cat.engine.connect() as conn:
            assert current_revision(conn) == "0002"
            rows = conn.execute(text("SELECT backend, cache_key FROM models")).all()
        assert [tuple(r) for r in rows] == [("TVAE", None)]
