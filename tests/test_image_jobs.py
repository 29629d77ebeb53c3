"""Image batch jobs: the spec (and its errors), the image validation gate, a job end to end
into a SQLite catalog (PNG storage read back bit-exact), a failing gate, DP and the CLI."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipelines.catalog import Catalog
from pipelines.images.runner import class_seeds
from pipelines.images.spec import ImageJobSpec
from pipelines.jobs.runner import run_job
from pipelines.jobs.spec import JobSpec, load_spec, parse_spec
from pipelines.validation import image_suite, validate_images
from synthgen.errors import ConfigError, DataError, SynthgenError
from synthgen.images import ImageSchema, ImageSet, load_digits

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits_images.yaml"
PER_CLASS = 30  # source images per digit: 300 in all, 240 after the holdout


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    full = load_digits(8)
    keep = np.concatenate(
        [np.flatnonzero(full.labels == k)[:PER_CLASS] for k in range(full.schema.n_classes)]
    )
    return full.subset(np.sort(keep))


@pytest.fixture(scope="module")
def digits_file(digits, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images") / "digits_small.parquet"
    digits.to_parquet(path)
    return path


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """One SQLite catalog for the module: later jobs reuse the model the first one fitted."""
    folder = tmp_path_factory.mktemp("catalog")
    with Catalog(f"sqlite:///{folder}/c.db", folder / "store") as cat:
        yield cat


def spec_dict(digits_file: Path, **overrides) -> dict:
    base = {
        "name": "digits_small_job",
        "seed": 0,
        "source": {"images": {"parquet": str(digits_file)}, "name": "digits_small"},
        "holdout": {"fraction": 0.2},
        "model": {"backend": "image_vae", "params": {"epochs": 3, "batch_size": 64}},
        "produce": {"per_class": 10},
        "validation": {"require_all_classes": True},
        "evaluate": {"utility": False, "extractor_epochs": 2},
        "gates": {"max_fid": 1e6, "min_classifier_accuracy": 0.0},
        "export": {"name": "digits_small_synth", "tags": ["test"]},
    }
    base.update(overrides)
    return base


def spec_of(digits_file: Path, **overrides) -> ImageJobSpec:
    spec = parse_spec(json.dumps(spec_dict(digits_file, **overrides)))  # JSON is YAML
    assert isinstance(spec, ImageJobSpec)
    return spec


# ---------------------------------------------------------------------- the spec
def test_example_spec_is_an_image_job():
    spec = load_spec(EXAMPLE)
    assert isinstance(spec, ImageJobSpec) and spec.modality == "images"
    assert spec.source.images.kind == "digits" and spec.source.images.digits.size == 8
    assert spec.model.backend == "image_vae" and spec.produce.per_class == 50
    assert spec.gates.score_gates() == {"max_fid": 5.0, "min_classifier_accuracy": 0.8}
    assert spec.export.name == "digits_synthetic"


def test_tabular_specs_stay_tabular(tmp_path):
    text = json.dumps({"name": "t", "source": {"bundled": "adult"}, "export": {"name": "x"}})
    assert type(parse_spec(text)) is JobSpec


def test_spec_errors_name_the_field_and_line():
    text = textwrap.dedent(
        """\
        name: digits
        source:
          images: {digits: {size: 8}}
        gates:
          max_fdi: 3
        export: {name: out}
        """
    )
    with pytest.raises(ConfigError, match=r"job\.yaml, line 5: gates\.max_fdi: unknown field"):
        parse_spec(text, where="job.yaml")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": {"images": {"digits": {"size": 8}, "folder": "x"}}}, "got digits, folder"),
        ({"source": {"images": {"digits": {"size": 12}}}}, r"source\.images\.digits\.size"),
        ({"source": {"images": {}}}, "give exactly one of digits, folder, parquet or catalog"),
        ({"model": {"backend": "tvae"}}, "generates tables, not images"),
        ({"model": {"backend": "image_vea"}}, "unknown image backend 'image_vea'"),
        ({"produce": {"per_class": 5, "images": 50}}, "give images or per_class, not both"),
        ({"produce": {"per_class": 0}}, r"produce\.per_class"),
        ({"evaluate": {"enabled": False}}, r"need scores, but evaluate\.enabled is false"),
        (
            {"gates": {"min_augmentation_gain": 0.0}, "evaluate": {"utility": False}},
            r"min_augmentation_gain needs evaluate\.utility",
        ),
        (
            {"gates": {"min_augmentation_gain": 0.0}, "holdout": None, "evaluate": {}},
            "give a holdout or remove the gate",
        ),
        ({"model": {"dp": {"epsilon": 1}}}, r"state the public classes as source\.classes"),
        ({"gates": {"max_epsilon": 1}}, r"max_epsilon needs model\.dp"),
        ({"evaluate": {"extractor": "a", "extractor_from": "b"}}, "not both"),
    ],
)
def test_bad_image_specs(digits_file, change, message):
    with pytest.raises(ConfigError, match=message):
        spec_of(digits_file, **change)


def test_image_backend_in_a_tabular_job_is_refused():
    text = json.dumps(
        {
            "name": "t",
            "source": {"bundled": "adult"},
            "model": {"backend": "image_vae"},
            "export": {"name": "x"},
        }
    )
    with pytest.raises(ConfigError, match=r"model\.backend: backend 'image_vae' generates images"):
        parse_spec(text)


# ---------------------------------------------------------------------- the gate
def test_validation_gate_passes_a_good_set(digits):
    result = validate_images(digits, image_suite(digits.schema, per_class=PER_CLASS, count=300))
    assert result.success and not result.failures
    checks = [r["check"] for r in result.result["results"]]
    assert checks == ["shape", "classes", "labels", "finite", "range", "count", "per_class"]
    json.dumps(result.to_dict(), allow_nan=False)  # stored in the catalog as JSON


def test_validation_gate_names_what_is_broken(digits):
    pixels = digits.images.copy()
    pixels[17, 0, 2, 3] = 1.5
    pixels[20, 0, 0, 0] = np.nan
    labels = digits.labels.copy()
    labels[5] = 11
    labels[labels == 7] = 3  # no sevens left
    suite = image_suite(digits.schema, per_class={"7": 50}, count=10, require_all_classes=True)
    result = validate_images(pixels, suite, labels=labels)
    assert not result.success
    messages = [f.message for f in result.failures]
    assert messages[0].startswith("image 5 has label code 11, not a class of")
    assert messages[1] == "image 20 holds NaN or infinite pixels"
    assert messages[2] == "image 17 has pixels outside [0, 1] (min 0, max 1.5)"
    assert messages[3] == "the set holds 300 images, expected exactly 10"
    assert messages[4] == "class '7' has 0 images, 50 asked"
    assert messages[5] == "class '7' has 0 images; every class must be present"
    assert result.failures[2].unexpected == [17]
    stats = result.statistics
    assert stats["evaluated_expectations"] == 8 and stats["unsuccessful_expectations"] == 6


def test_validation_gate_shape_channels_and_classes(digits):
    suite = image_suite(digits.schema)
    (failure,) = validate_images(digits.resized(16), suite).failures
    assert failure.message == "images are 16x16 pixels, the schema says 8x8 (expected 1x8x8)"
    rgb = np.repeat(digits.images, 3, axis=1)
    (failure,) = validate_images(rgb, suite, labels=digits.label_names).failures
    assert failure.message.startswith("images have 3 channel(s), the schema says 1")
    renamed = ImageSet(digits.images, digits.labels, ImageSchema(8, 8, 1, tuple("abcdefghij")))
    messages = [f.message for f in validate_images(renamed, suite).failures]
    assert messages[0].startswith("the image set's classes ['a', 'b'")
    assert messages[1].startswith("image 0 has label 'a', not a class of")


def test_image_suite_refuses_unknown_classes(digits):
    with pytest.raises(ConfigError, match=r"per_class names \['x'\]"):
        image_suite(digits.schema, per_class={"x": 3})


# ---------------------------------------------------------------------- storage
def test_export_images_is_content_addressed_and_checked(tmp_path, digits):
    with Catalog(f"sqlite:///{tmp_path}/c.db", tmp_path / "store") as cat:
        first = cat.export_images(digits, "small", tags=["a"])
        again = cat.export_images(ImageSet(digits.images, digits.labels, digits.schema), "small")
        assert first.created and not again.created and again.dataset.ref == "small@1"
        changed = digits.images.copy()
        changed[0, 0, 0, 0] = 1.0 - changed[0, 0, 0, 0]  # one pixel
        other = cat.export_images(ImageSet(changed, digits.labels, digits.schema), "small")
        assert other.dataset.ref == "small@2" and other.dataset.digest != first.dataset.digest
        assert np.array_equal(cat.read_images("small@1").to_uint8(), digits.to_uint8())
        path = Path(cat.get("small@1").uri)
        path.write_bytes(cat.storage.read_bytes(cat.get("small@2").uri))  # damage it
        with pytest.raises(DataError, match="does not match its digest"):
            cat.read_images("small@1")
        with pytest.raises(DataError, match="exported without an evaluation"):
            cat.image_extractor("small@2")


# ---------------------------------------------------------------------- end to end
def _png_file_contents(catalog: Catalog, ref: str) -> tuple[np.ndarray, list[str]]:
    """Pixels and labels decoded straight from the stored file with PIL (not ImageSet)."""
    data = catalog.storage.read_bytes(catalog.get(ref).uri)
    table = pq.read_table(io.BytesIO(data))
    pixels = [np.asarray(Image.open(io.BytesIO(b))) for b in table.column("image").to_pylist()]
    return np.stack(pixels)[:, None], table.column("label").to_pylist()


def test_image_job_end_to_end(catalog, digits_file):
    spec = spec_of(digits_file)
    result = run_job(spec, catalog=catalog)
    assert result.status == "succeeded", result.error
    assert list(result.stages) == [
        "load",
        "fit",
        "sample",
        "validate",
        "evaluate",
        "gate",
        "export",
    ]
    assert result.stages["load"]["train_images"] == 240
    assert result.stages["load"]["holdout_images"] == 60
    assert {"fid.image", "kid.mean", "prc.precision", "classifier.synthetic_accuracy"} <= set(
        result.scores
    )
    ref = result.dataset.ref
    assert ref == "digits_small_synth@1" and result.dataset.row_count == 100

    shown = catalog.show(ref)
    assert shown["format"] == "parquet-png"
    assert shown["schema"]["classes"] == [str(k) for k in range(10)]
    assert shown["images"]["shape"] == [1, 8, 8]
    assert shown["images"]["class_counts"] == {str(k): 10 for k in range(10)}
    assert shown["parents"] == [
        {
            "child": ref,
            "parent": "digits_small@1",
            "relation": "sampled_from",
            "model_id": result.model_id,
            "job_run_id": result.run_id,
        }
    ]
    assert shown["reports"] and "fid.image" in shown["reports"][0]["scores"]
    assert shown["validations"][0]["success"] is True
    assert shown["models"][0]["backend"] == "ImageVAE"
    (run,) = [r for r in catalog.runs() if r["id"] == result.run_id]
    assert run["status"] == "succeeded"

    # the extractor is kept with the dataset, and it is the one the report names
    extractor = catalog.image_extractor(ref)
    assert extractor.digest == result.stages["evaluate"]["extractor_digest"]
    assert shown["images"]["extractor"]["digest"] == extractor.digest
    stored_report = json.loads(catalog.storage.read_bytes(shown["reports"][0]["json_uri"]))
    assert stored_report["extractor"]["digest"] == extractor.digest

    # the file is Parquet of PNGs: decoded with PIL, it is what read_images gives, and
    # what the stored model samples again with the job's seeds (8-bit, bit-exact)
    pixels, labels = _png_file_contents(catalog, ref)
    images = catalog.read_images(ref)
    assert np.array_equal(pixels, images.to_uint8()) and labels == images.label_names
    model = catalog.load_model(result.model_id)
    classes = model.schema.classes
    seeds = class_seeds(spec.seed, len(classes))
    again = [
        model.sample(10, seed=s, conditions={"label": c})
        for c, s in zip(classes, seeds, strict=True)
    ]
    expected = np.concatenate([a.to_uint8() for a in again])
    assert np.array_equal(pixels, expected)
    assert labels == [c for c in classes for _ in range(10)]

    with pytest.raises(DataError, match="is an image dataset"):
        catalog.read(ref)
    assert catalog.gc(min_age=0, dry_run=True) == []  # data, extractor, reports referenced


def test_second_run_reuses_model_and_version_and_extractor(catalog, digits_file):
    first = run_job(spec_of(digits_file), catalog=catalog)
    spec = spec_of(
        digits_file,
        source={"images": {"catalog": "digits_small@1"}},
        evaluate={"utility": False, "extractor_from": "digits_small_synth"},
    )
    second = run_job(spec, catalog=catalog)
    assert second.status == "succeeded", second.error
    assert second.stages["fit"]["status"] == "cached" and second.model_id == first.model_id
    assert second.dataset.ref == first.dataset.ref  # same samples: one version
    assert (
        second.stages["evaluate"]["extractor_digest"]
        == first.stages["evaluate"]["extractor_digest"]
    )
    assert second.scores["fid.image"] == pytest.approx(first.scores["fid.image"])


def test_failed_gate_exports_nothing_and_keeps_the_report(catalog, digits_file):
    spec = spec_of(
        digits_file,
        gates={"max_fid": 0.0, "min_classifier_accuracy": 0.0},
        export={"name": "never_exported"},
    )
    result = run_job(spec, catalog=catalog)
    assert result.status == "gate_failed" and result.exit_code == 1
    (gate,) = result.failed_gates()
    assert gate.gate == "max_fid" and gate.detail.startswith("fid.image ")
    assert "is not <= 0 (off by" in gate.detail
    assert result.stages["export"]["status"] == "skipped"
    assert "never_exported" not in {d.name for d in catalog.list()}
    assert catalog.storage.exists(result.report_uri)
    (run,) = [r for r in catalog.runs() if r["id"] == result.run_id]
    assert run["status"] == "gate_failed" and "max_fid" in run["error"]


def test_a_failed_validation_fails_its_gate(catalog, digits_file, monkeypatch):
    from pipelines.images import runner

    def short(self, model, train_size):  # a backend that forgets a class
        out = model.sample(20, seed=1, conditions={"label": "0"})
        return out.concat(model.sample(20, seed=2, conditions={"label": "1"}))

    monkeypatch.setattr(runner.ImageJobRunner, "_sample_images", short)
    spec = spec_of(digits_file, evaluate={"enabled": False}, gates={}, export={"name": "short"})
    result = run_job(spec, catalog=catalog)
    assert result.status == "gate_failed"
    (gate,) = result.failed_gates()
    assert gate.gate == "validation_must_pass"
    assert "the set holds 40 images, expected exactly 100" in gate.detail
    assert "class '2' has 0 images, 10 asked" in gate.detail
    assert "short" not in {d.name for d in catalog.list()}


def test_dp_image_job_charges_the_ledger_once(catalog, digits_file):
    classes = [str(k) for k in range(10)]
    source = {"images": {"parquet": str(digits_file)}, "name": "digits_dp", "classes": classes}
    model = {"backend": "image_vae", "params": {"epochs": 1, "batch_size": 64}}
    spec = spec_of(
        digits_file,
        source=source,
        model=model | {"dp": {"epsilon": 3.0}},
        gates={"max_epsilon": 3.0},
        evaluate={"enabled": False},
        export={"name": "digits_dp_synth"},
    )
    refused = run_job(spec, catalog=catalog)  # registers the source; it has no budget yet
    assert refused.status == "failed" and "no privacy budget" in refused.error
    catalog.set_budget("digits_dp", 5.0)
    result = run_job(spec, catalog=catalog)
    assert result.status == "succeeded", result.error
    assert 0 < result.stages["fit"]["epsilon"] <= 3.0
    again = run_job(spec, catalog=catalog)
    assert again.stages["fit"]["status"] == "cached"
    budget = catalog.budget("digits_dp")
    assert [c["status"] for c in budget["charges"]] == ["spent"]
    assert budget["spent_epsilon"] == pytest.approx(result.stages["fit"]["epsilon"])
    assert catalog.show("digits_dp_synth")["models"][0]["privacy_spent"]["epsilon"] <= 3.0
    # the non-DP feature extractor of the raw images is not stored with a DP release
    with pytest.raises(SynthgenError, match="no stored image feature extractor"):
        catalog.image_extractor("digits_dp_synth")


# ---------------------------------------------------------------------- the CLI
def _write_folder(root: Path, digits: ImageSet) -> None:
    for code, name in enumerate(("zero", "one")):
        folder = root / name
        folder.mkdir(parents=True)
        for i, index in enumerate(np.flatnonzero(digits.labels == code)[:12]):
            Image.fromarray(digits.to_uint8()[index, 0], mode="L").save(folder / f"{i}.png")


def test_synthgen_run_and_catalog_show_through_the_cli(tmp_path, digits):
    from pipelines.cli import app

    _write_folder(tmp_path / "pictures", digits)
    job = tmp_path / "job.yaml"
    job.write_text(
        textwrap.dedent(
            """\
            name: folder_job
            source:
              images: {folder: pictures}     # relative to this file
            holdout: {fraction: 0.25}
            model: {backend: image_vae, params: {epochs: 2, batch_size: 16}}
            produce: {images: 16}
            evaluate: {enabled: false}
            export: {name: folder_synth}
            """
        )
    )
    url = f"sqlite:///{tmp_path}/cli.db"
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(job), "--catalog", url])
    assert result.exit_code == 0, result.output
    assert "folder_job: succeeded" in result.output and "folder_synth@1" in result.output
    shown = runner.invoke(app, ["catalog", "show", "folder_synth", "--catalog", url])
    assert shown.exit_code == 0, shown.output
    assert "row_count: 16" in shown.output
    assert "images: 16 of 1x8x8 (channels x height x width)" in shown.output
    assert "classes (2): one, zero" in shown.output
    as_json = runner.invoke(app, ["catalog", "show", "folder_synth", "--catalog", url, "--json"])
    assert json.loads(as_json.stdout)["images"]["classes"] == ["one", "zero"]

    bad = tmp_path / "bad.yaml"
    bad.write_text(job.read_text().replace("produce: {images: 16}", "produce: {image: 16}"))
    failed = runner.invoke(app, ["run", str(bad), "--catalog", url])
    assert failed.exit_code == 2 and "line 6: produce.image: unknown field" in failed.output
