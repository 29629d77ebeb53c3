"""Image evaluation: the project extractor, torch-fidelity metrics, utility, report files.

Everything runs on scikit-learn's bundled 8x8 digits: real images, real images with a
blur and noise, and images whose pixels are shuffled within each image (the same pixel
values, no strokes left). No generator is needed to test the measuring instrument.
"""

from __future__ import annotations

import base64
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from evaluation.images import (
    ImageFeatureExtractor,
    ImageReport,
    evaluate_images,
    image_metrics,
    sample_grid,
)
from evaluation.images.metrics import INCEPTION_FILE, KID_SUBSETS, FeatureSpace
from synthgen.errors import ConfigError, DataError, ModelFileError
from synthgen.images import ImageSet, load_digits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two cores shared with other workers: one torch thread (results do not depend on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    """(train, extra, holdout): 1,004 / 434 / 359 real 8x8 digits, stratified."""
    rest, holdout = load_digits(8).split(0.2, seed=0)
    train, extra = rest.split(0.3, seed=1)
    return train, extra, holdout


@pytest.fixture(scope="module")
def extractor(digits):
    return ImageFeatureExtractor().fit(digits[0], seed=0, epochs=8)


def shuffled(images: ImageSet, seed: int = 0) -> ImageSet:
    """Each image's pixels permuted: the intensity histogram stays, the digit is gone."""
    rng = np.random.default_rng(seed)
    flat = images.images.reshape(len(images), -1).copy()
    for row in flat:
        rng.shuffle(row)
    return ImageSet(flat.reshape(images.images.shape), images.labels, images.schema)


def blurred(images: ImageSet, seed: int = 0) -> ImageSet:
    """A 3x3 box blur plus Gaussian noise (sd 0.15): degraded digits, still digits."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(images.images)
    x = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    noisy = x.numpy() + rng.normal(0.0, 0.15, x.shape)
    return ImageSet(np.clip(noisy, 0, 1).astype(np.float32), images.labels, images.schema)


@pytest.fixture(scope="module")
def reports(digits, extractor):
    train, extra, holdout = digits
    kw = {"extractor": extractor, "seed": 0, "utility_repeats": 2}
    return {
        "real": evaluate_images(train, extra, holdout, utility=True, **kw),
        "blurred": evaluate_images(train, blurred(extra), holdout, utility=False, **kw),
        "shuffled": evaluate_images(train, shuffled(extra), holdout, utility=True, **kw),
    }


# --------------------------------------------------------------------- the extractor
def test_extractor_classifies_held_out_digits(digits, extractor):
    _, _, holdout = digits
    assert extractor.accuracy(holdout) >= 0.9
    assert extractor.features(holdout).shape == (len(holdout), 64)
    assert extractor.features(holdout).dtype == np.float32
    predicted = extractor.predict(holdout)
    assert predicted.shape == (len(holdout),) and predicted.dtype == np.int64
    assert extractor.input_shape == (1, 8, 8)
    assert extractor.digest in extractor.name or extractor.digest[:12] in extractor.name


def test_extractor_training_is_seeded(digits):
    small = digits[0].subset(np.arange(200))
    a = ImageFeatureExtractor(conv_width=8, feature_dim=16).fit(small, seed=3, epochs=2)
    b = ImageFeatureExtractor(conv_width=8, feature_dim=16).fit(small, seed=3, epochs=2)
    c = ImageFeatureExtractor(conv_width=8, feature_dim=16).fit(small, seed=4, epochs=2)
    assert a.digest == b.digest
    assert a.digest != c.digest


def test_save_and_load_reproduce_features_and_digest(tmp_path, digits, extractor):
    path = tmp_path / "digits.extractor"
    extractor.save(path)
    loaded = ImageFeatureExtractor.load(path)
    holdout = digits[2]
    assert np.array_equal(loaded.features(holdout), extractor.features(holdout))
    assert loaded.digest == extractor.digest and loaded.name == extractor.name
    assert loaded.info()["training"]["epochs"] == 8


def test_damaged_extractor_files_are_refused(tmp_path, extractor):
    path = tmp_path / "good.extractor"
    extractor.save(path)
    data = bytearray(path.read_bytes())
    flipped = tmp_path / "flipped.extractor"
    data[-100] ^= 0xFF  # a weight byte
    flipped.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="damaged"):
        ImageFeatureExtractor.load(flipped)
    truncated = tmp_path / "truncated.extractor"
    truncated.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(ModelFileError, match="truncated"):
        ImageFeatureExtractor.load(truncated)
    text = tmp_path / "notes.txt"
    text.write_text("not an extractor")
    with pytest.raises(ModelFileError, match="not a synthgen model"):
        ImageFeatureExtractor.load(text)
    with pytest.raises(ModelFileError, match="does not exist"):
        ImageFeatureExtractor.load(tmp_path / "missing.extractor")


# --------------------------------------------------------------------- the metrics
def test_fid_orders_real_blurred_and_shuffled(reports):
    floor = reports["real"]["fid.real_vs_real"]
    real, blur, shuf = (reports[k]["fid.image"] for k in ("real", "blurred", "shuffled"))
    assert shuf >= 10 * max(real, floor)  # at least an order of magnitude
    assert real < blur < shuf
    assert real < 3 * floor + 0.5  # extra real images sit at the real-vs-real floor
    assert reports["real"]["prc.precision"] > 0.7 > reports["shuffled"]["prc.precision"]
    assert reports["real"]["prc.recall"] > 0.7 > reports["shuffled"]["prc.recall"]
    assert reports["real"]["kid.mean"] < 0.1 * reports["shuffled"]["kid.mean"]


def test_classifier_scores(reports):
    assert reports["real"]["classifier.synthetic_accuracy"] >= 0.9
    assert reports["shuffled"]["classifier.synthetic_accuracy"] < 0.5
    assert reports["real"]["classifier.holdout_accuracy"] >= 0.9


def test_numbers_are_torch_fidelitys_on_the_extractors_features(digits, extractor, reports):
    train, extra, _ = digits
    report = reports["real"]
    syn = torch.from_numpy(extractor.features(extra))
    real = torch.from_numpy(extractor.features(train))
    fid = fid_statistics_to_metric(
        fid_features_to_statistics(syn), fid_features_to_statistics(real), verbose=False
    )["frechet_inception_distance"]
    assert report["fid.image"] == pytest.approx(fid, rel=1e-4)
    kid = kid_features_to_metric(
        syn,
        real,
        kid_subsets=KID_SUBSETS,
        kid_subset_size=min(len(train), len(extra)),
        rng_seed=0,
        verbose=False,
    )
    assert report["kid.mean"] == pytest.approx(kid["kernel_inception_distance_mean"], rel=1e-3)
    prc = prc_features_to_metric(syn, real, prc_neighborhood=3, verbose=False)
    assert report["prc.precision"] == pytest.approx(prc["precision"], abs=1e-6)
    assert report["prc.recall"] == pytest.approx(prc["recall"], abs=1e-6)


def test_identical_sets(digits, extractor, reports):
    train = digits[0]
    same = image_metrics(train, train, extractor, seed=0)
    assert same["fid.image"] < 1e-3
    # the unbiased estimator on overlapping subsets is slightly negative, of order 1/n
    assert abs(same["kid.mean"]) < 0.05 * reports["shuffled"]["kid.mean"]
    assert same["prc.precision"] == 1.0 and same["prc.recall"] == 1.0


def test_small_sets_get_smaller_subsets(digits, extractor):
    train, extra, _ = digits
    report = evaluate_images(train.subset(range(5)), extra.subset(range(3)), extractor=extractor)
    assert report.meta["kid_subset_size"] == 3 and report.meta["prc_neighborhood"] == 2
    assert all(math.isfinite(report[k]) for k in ("fid.image", "kid.mean", "prc.recall"))
    assert "holdout" in report.meta["skipped"]["utility"]
    tiny = evaluate_images(train.subset([0, 1]), extra.subset([0, 1]), extractor=extractor)
    assert math.isfinite(tiny["fid.image"])


# --------------------------------------------------------------------- utility
def test_augmentation_gain_real_helps_shuffled_does_not(reports):
    real, shuf = reports["real"], reports["shuffled"]
    assert real["utility.augmentation_gain"] > 0.02
    assert real["utility.real_only_accuracy"] == shuf["utility.real_only_accuracy"]
    assert shuf["utility.augmentation_gain"] < 0.01
    assert real.meta["utility"]["runs"][0]["real_images"] == pytest.approx(100, abs=5)
    assert "utility.augmentation_gain" not in reports["blurred"].scores


# --------------------------------------------------------------------- extractor choice
def test_extractor_is_trained_when_none_given_and_can_be_reused(tmp_path, digits):
    train, extra, _ = digits
    real, syn = train.subset(range(300)), extra.subset(range(100))
    report = evaluate_images(real, syn, extractor_epochs=2, utility=False)
    assert isinstance(report.extractor, ImageFeatureExtractor)
    info = report.extractor_info
    assert info["kind"] == "project-cnn" and info["digest"] == report.extractor.digest
    assert info["input_shape"] == [1, 8, 8] and report.meta["extractor_trained_here"]
    path = tmp_path / "kept.extractor"
    report.extractor.save(path)
    again = evaluate_images(real, syn, extractor=str(path), utility=False)
    assert again["fid.image"] == pytest.approx(report["fid.image"], rel=1e-6)
    assert again.extractor_info["digest"] == info["digest"]
    assert not again.meta["extractor_trained_here"]


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory) -> Path:
    """A weights file of the inception-v3-compat layout with random weights.

    The real file (weights-inception-2015-12-05-6726825d.pth) is not on this machine
    and must not be downloaded; random weights exercise the same plumbing.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    folder = tmp_path_factory.mktemp("inception")
    empty = folder / "empty.pth"
    torch.save({}, empty)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], str(empty))
    path = folder / "random-inception.pth"
    torch.save(net.state_dict(), path)
    return path


def test_evaluate_images_with_inception_records_it(digits, extractor, random_inception):
    train, extra, _ = digits
    real, syn = train.subset(range(4)), extra.subset(range(4))
    # torch-fidelity's Inception refuses anything but B x 3 x H x W: this run proves the
    # grayscale digits reach it as RGB
    report = evaluate_images(
        real, syn, extractor=extractor, inception_weights=str(random_inception), utility=False
    )
    info = report.extractor_info
    assert len(info["digest"]) == 64 and info["weights_file"] == "random-inception.pth"
    assert info["kind"] == "inception-v3-compat" and info["input_shape"] == [3, 299, 299]
    assert report.meta["classifier"]["digest"] == extractor.digest
    assert {"fid.image", "kid.mean", "prc.recall", "classifier.synthetic_accuracy"} <= set(
        report.scores
    )


def test_grayscale_is_repeated_to_rgb_for_inception_only(digits, extractor):
    one = digits[1].subset([0])
    rgb = FeatureSpace("inception-v3-compat", "inception-v3-compat", "unused", 3)
    assert tuple(rgb.dataset(one)[0].shape) == (3, 8, 8)
    assert rgb.dataset(one)[0].dtype == torch.uint8
    own = FeatureSpace("project-cnn", "synthgen-image-cnn", "unused", None, extractor=extractor)
    assert tuple(own.dataset(one)[0].shape) == (1, 8, 8)


class NotATensor:
    """Something a weights-only load refuses: a pickled instance of a project class."""


def test_bad_inception_weights_give_clear_errors(tmp_path, digits, extractor):
    train, extra, _ = digits
    real, syn = train.subset(range(4)), extra.subset(range(4))
    with pytest.raises(ModelFileError, match=INCEPTION_FILE):
        evaluate_images(real, syn, extractor=extractor, inception_weights=tmp_path / "missing.pth")
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(ModelFileError, match="not inception-v3-compat weights"):
        evaluate_images(real, syn, extractor=extractor, inception_weights=other)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"fc.weight": NotATensor()}, unsafe)
    with pytest.raises(ModelFileError, match="plain tensors"):
        evaluate_images(real, syn, extractor=extractor, inception_weights=unsafe)
    with pytest.raises(ModelFileError, match="not a file path"):
        evaluate_images(real, syn, extractor=extractor, inception_weights=3)


# --------------------------------------------------------------------- bad input
def test_mismatched_sets_are_refused_naming_the_difference(digits, extractor):
    train, extra, holdout = digits
    big = extra.resized(16)
    with pytest.raises(DataError, match="16x16 pixels but the real images are 8x8"):
        evaluate_images(train, big, extractor=extractor)
    other_classes = ImageSet(
        holdout.images, holdout.labels, type(holdout.schema)(8, 8, 1, tuple("abcdefghij"))
    )
    with pytest.raises(DataError, match="holdout images have classes"):
        evaluate_images(train, extra, other_classes, extractor=extractor)
    rgb = ImageSet.from_arrays(
        np.repeat(extra.images, 3, axis=1), extra.labels, classes=extra.schema.classes
    )
    with pytest.raises(DataError, match="3 channel"):
        evaluate_images(train, rgb, extractor=extractor)
    with pytest.raises(DataError, match="must be an ImageSet"):
        evaluate_images(train, extra.images, extractor=extractor)
    with pytest.raises(DataError, match="at least 2"):
        evaluate_images(train, extra.subset([0]), extractor=extractor)
    with pytest.raises(ConfigError, match="extractor must be"):
        evaluate_images(train, extra, extractor=42)


def test_extractor_refuses_images_of_another_shape(digits, extractor):
    train, extra, _ = digits
    with pytest.raises(DataError, match="trained on 1x8x8"):
        extractor.features(extra.resized(16))
    with pytest.raises(DataError, match="trained on 1x8x8"):
        evaluate_images(train.resized(16), extra.resized(16), extractor=extractor)
    with pytest.raises(DataError, match="trained on 1x8x8"):
        image_metrics(extra.resized(16), train.resized(16), extractor)


# --------------------------------------------------------------------- report files
def test_html_and_json(tmp_path, reports, extractor):
    report = reports["real"]
    page = report.to_html(tmp_path / "report.html")
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == page
    assert "data:image/png;base64," in page and extractor.name in page
    assert "fid.real_vs_real" in page and "utility.augmentation_gain" in page
    text = report.to_json(tmp_path / "report.json")
    data = json.loads(text)
    assert data["format"] == "synthgen.image_evaluation"
    assert data["extractor"]["digest"] == extractor.digest
    back = ImageReport.from_json(tmp_path / "report.json")
    assert back.to_dict() == report.to_dict()
    assert back.to_html() == report.to_html()
    with pytest.raises(DataError, match="does not exist"):
        report.to_html(tmp_path / "no" / "report.html")
    with pytest.raises(DataError, match="not a synthgen image evaluation report"):
        ImageReport.from_json('{"format": "other"}')


def test_sample_grid_has_a_row_per_class_and_a_real_row(digits, reports):
    train, extra, _ = digits
    grid = sample_grid(extra, per_class=8, reference=train)
    png = Image.open(io.BytesIO(base64.b64decode(reports["real"].to_dict()["grid_png"])))
    assert png.size == grid.size
    rows = train.schema.n_classes + 1  # ten digits, then real images
    assert grid.size[1] >= rows * 32 and grid.size[0] >= 8 * 32
    only_threes = extra.subset(np.flatnonzero(extra.labels == 3)[:2])
    partial = np.asarray(sample_grid(only_threes, per_class=4))
    assert partial.shape[0] == pytest.approx(10 * 34 + 2, abs=1)  # empty rows still drawn


def test_importing_evaluation_stays_cheap():
    code = (
        "import sys, evaluation\n"
        "from evaluation import evaluate_images, ImageReport\n"
        "heavy = sorted(m for m in ('torch', 'torch_fidelity', 'PIL') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
