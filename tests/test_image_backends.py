"""Image backends: the tabular contract (fit, sample, save/load, seed, dp, clone) on digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

import synthgen as sg
from privacy import DPConfig
from synthgen.errors import ConfigError, DataError, SynthgenError
from synthgen.images import ImageSchema, ImageSet, load_digits
from synthgen.images.networks import SNConv2d, power_iterations_
from synthgen.images.transform import ImageTransformer

FAST = {
    "ImageVAE": {"width": 8, "latent_dim": 4},
    "ImageGAN": {"width": 8, "latent_dim": 8},
    "ImageDDPM": {"width": 8, "multipliers": (1, 2), "sample_steps": 5},
}
NAMES = sorted(FAST)


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    return load_digits(8)


@pytest.fixture(scope="module")
def small(digits) -> ImageSet:
    rest, part = digits.split(0.15, seed=0)
    return part  # ~270 images, every class


def _model(name: str, **overrides):
    return getattr(sg, name)(
        **{"epochs": 2, "batch_size": 64, "progress": False, **FAST[name], **overrides}
    )


@pytest.fixture(scope="module")
def fitted(small):
    return {name: _model(name).fit(small) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_sample_is_an_image_set_of_the_training_schema(name, fitted, small):
    model = fitted[name]
    out = model.sample(30, seed=1)
    assert isinstance(out, ImageSet) and len(out) == 30
    assert out.schema == small.schema == model.schema
    assert out.images.dtype == np.float32
    assert out.images.min() >= 0.0 and out.images.max() <= 1.0
    assert model.sample(0, seed=1).images.shape == (0, 1, 8, 8)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_images_and_a_saved_model_samples_the_same(name, fitted, tmp_path):
    model = fitted[name]
    a = model.sample(12, seed=3, conditions={"label": "7"})
    b = model.sample(12, seed=3, conditions={"label": "7"})
    c = model.sample(12, seed=4, conditions={"label": "7"})
    assert np.array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    assert set(a.label_names) == {"7"}
    path = tmp_path / f"{name}.synth"
    model.save(str(path))
    loaded = sg.load_model(str(path))
    assert type(loaded) is type(model) and loaded.schema == model.schema
    again = loaded.sample(12, seed=3, conditions={"label": "7"})
    assert np.array_equal(again.images, a.images)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_model(name, small):
    first = _model(name, epochs=1).fit(small)
    second = _model(name, epochs=1).fit(small)
    for key, module in first._modules().items():
        other = second._modules()[key].state_dict()
        for param, value in module.state_dict().items():
            assert torch.equal(value, other[param]), (key, param)


@pytest.mark.parametrize("name", NAMES)
def test_get_params_and_clone(name):
    model = _model(name, seed=5)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert copy.seed == 5 and copy is not model


def test_unconditional_labels_follow_the_training_frequencies(digits):
    # a set with only two classes, 3:1; the model draws labels in that ratio
    keep = np.flatnonzero(digits.labels <= 1)
    ones = np.flatnonzero(digits.labels == 1)[: len(keep) // 8]
    index = np.concatenate([np.flatnonzero(digits.labels == 0), ones])
    skewed = ImageSet.from_arrays(digits.images[index][:, 0], digits.labels[index])
    model = _model("ImageVAE", epochs=1).fit(skewed)
    share = float(np.mean(model.sample(2000, seed=0).labels == 1))
    expected = len(ones) / len(index)
    assert abs(share - expected) < 0.04


def test_conditional_samples_look_like_their_class_after_short_training(digits):
    """A VAE trained briefly already draws the asked class (a pixel classifier agrees)."""
    train, test = digits.split(0.3, seed=1)
    model = sg.ImageVAE(epochs=15, width=16, progress=False, seed=0).fit(train)
    flat = train.images.reshape(len(train), -1)
    classifier = LogisticRegression(max_iter=500).fit(flat, train.labels)
    hits = []
    for code in range(10):
        out = model.sample(20, seed=code, conditions={"label": code})
        hits.append(classifier.predict(out.images.reshape(20, -1)) == code)
    assert float(np.mean(hits)) >= 0.8


def test_spectral_norm_bounds_the_critic_layers():
    torch.manual_seed(0)
    layer = SNConv2d(3, 8, 3, padding=1)
    with torch.no_grad():
        layer.weight.mul_(10.0)
    for _ in range(50):
        power_iterations_(layer)
    with torch.no_grad():
        weight = layer.normalised_weight()
    top = torch.linalg.matrix_norm(weight.reshape(8, -1), ord=2)
    assert float(top) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_dp_fit_reports_the_accountants_epsilon(name, small):
    model = _model(name, epochs=1, dp=DPConfig(epsilon=2.0)).fit(small, schema=small.schema)
    spent = model.privacy_spent
    assert spent.preprocessing_epsilon == 0.0
    assert 0 < spent.epsilon <= 2.0
    assert spent.steps >= 1
    # labels of unconditional samples are uniform: the class frequencies are private
    assert torch.allclose(model.class_prior_, torch.full((10,), 0.1))


def test_dp_needs_a_public_schema(small):
    with pytest.raises(ConfigError, match="schema"):
        _model("ImageVAE", dp=DPConfig(epsilon=2.0)).fit(small)


def test_checkpoint_resume_continues_like_an_unbroken_fit(small, tmp_path):
    whole = _model("ImageDDPM", epochs=2).fit(small)
    broken = _model("ImageDDPM", epochs=1, checkpoint_dir=str(tmp_path), checkpoint_every=1)
    broken.fit(small)
    resumed = _model("ImageDDPM", epochs=2, checkpoint_dir=str(tmp_path), checkpoint_every=1)
    resumed.fit(small, resume=True)
    for key, value in whole.net_.state_dict().items():
        assert torch.allclose(value, resumed.net_.state_dict()[key], atol=1e-6), key


def test_schema_with_more_classes_relabels_the_set(small):
    wider = ImageSchema(8, 8, 1, tuple(str(k) for k in range(11)))
    model = _model("ImageVAE", epochs=1).fit(small, schema=wider)
    assert model.schema.n_classes == 11
    assert len(model.sample(3, seed=0, conditions={"label": "10"})) == 3


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda m, s: m.fit(s.images), DataError, "ImageSet"),
        (lambda m, s: m.fit(s.subset([0])), DataError, "at least 2"),
        (lambda m, s: m.fit(s, schema=ImageSchema(16, 16)), DataError, "schema"),
        (lambda m, s: m.fit(s, schema=ImageSchema(8, 8, 1, ("a",))), DataError, "class"),
        (lambda m, s: m.fit(s, schema="images"), ConfigError, "ImageSchema"),
    ],
)
def test_bad_training_inputs_are_clear_errors(call, error, words, small):
    with pytest.raises(error, match=words):
        call(_model("ImageVAE", epochs=1), small)


def test_bad_sampling_requests_are_clear_errors(fitted):
    model = fitted["ImageGAN"]
    with pytest.raises(DataError, match="not one of the image classes"):
        model.sample(3, conditions={"label": "cat"})
    with pytest.raises(ConfigError, match="'label' only"):
        model.sample(3, conditions={"colour": 1})
    with pytest.raises(ConfigError, match="non-negative"):
        model.sample(-1)
    with pytest.raises(ConfigError):
        model.sample(2, seed=-3)
    with pytest.raises(SynthgenError, match="not fitted"):
        sg.ImageDDPM().sample(3)


def test_image_sides_must_suit_the_networks():
    odd = ImageSet(np.zeros((4, 1, 6, 6), np.float32), np.zeros(4, np.int64), ImageSchema(6, 6))
    with pytest.raises(ConfigError, match="multiples of 4"):
        _model("ImageVAE", epochs=1).fit(odd)
    with pytest.raises(ConfigError, match="multipliers"):
        _model("ImageDDPM", multipliers=(1, 2, 2, 2)).fit(
            ImageSet(np.zeros((4, 1, 4, 4), np.float32), np.zeros(4, np.int64), ImageSchema(4, 4))
        )


@pytest.mark.parametrize(
    "params",
    [
        {"width": 0},
        {"latent_dim": -1},
        {"critic_lr": 0.0},
    ],
)
def test_bad_parameters_are_refused_at_fit(params, small):
    with pytest.raises(ConfigError):
        sg.ImageGAN(**params).fit(small)


def test_ddpm_parameters_are_checked(small):
    for params in ({"multipliers": ()}, {"guidance": -1.0}, {"eta": 2.0}, {"sample_steps": 0}):
        with pytest.raises(ConfigError):
            sg.ImageDDPM(**params).fit(small)


def test_transformer_round_trips_pixels_and_labels(small):
    transformer = ImageTransformer().fit(small, small.schema)
    rows = transformer.encode(small)
    assert rows.shape == (len(small), 1 + 64)
    assert float(rows[:, 1:].min()) >= -1.0 and float(rows[:, 1:].max()) <= 1.0
    back = transformer.decode(rows)
    assert np.allclose(back.images, small.images, atol=1e-6)
    assert np.array_equal(back.labels, small.labels)
    meta, tensors = transformer.state_dict()
    assert ImageTransformer.from_state_dict(meta, tensors).schema == small.schema
