"""TabularAR: tokens, exact likelihood, any-order conditioning, imputation, budgets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import synthgen as sg
from synthgen.errors import ConfigError, DataError
from synthgen.transforms.tokens import TokenTransformer


@pytest.fixture(scope="module")
def ar(adult_small):
    return sg.TabularAR(
        epochs=6, seed=0, device="cpu", early_stopping_patience=None, validation_fraction=0.0
    ).fit(adult_small)


def test_tokens_round_trip_categories_and_exact_values(adult_small):
    tokenizer = TokenTransformer(rare_min_count=1).fit(adult_small)
    tokens = tokenizer.encode(adult_small)
    assert tokens.dtype == torch.long and tokens.shape[0] == len(adult_small)
    assert all(int(tokens[:, i].max()) < size for i, size in enumerate(tokenizer.sizes))
    decoded = tokenizer.decode(tokens, seed=0)
    for column in ("education", "workclass", "income", "education-num", "age"):
        pd.testing.assert_series_equal(decoded[column], adult_small[column])
    # binned numbers come back inside their sub-interval: within 1/(bins*positions) quantile
    fnlwgt = adult_small["fnlwgt"].to_numpy(float)
    error = np.abs(decoded["fnlwgt"].to_numpy(float) - fnlwgt)
    assert np.median(error) < 0.01 * (fnlwgt.max() - fnlwgt.min())
    assert decoded.dtypes.equals(adult_small.dtypes)


def test_point_masses_of_binned_numbers_get_their_own_bin():
    """70% exact zeros plus a continuous tail: zeros decode as zeros, the tail stays put."""
    rng = np.random.default_rng(0)
    values = np.where(rng.random(5000) < 0.7, 0.0, rng.exponential(100.0, 5000))
    values[:10] = 250.0  # a second, interior value repeated enough to fill a quantile
    values[10:400] = 250.0
    frame = pd.DataFrame({"seconds": values})
    tokens = TokenTransformer(bins=32, positions=8).fit(frame)
    decoded = tokens.decode(tokens.encode(frame), seed=0)["seconds"].to_numpy()
    assert np.isclose((decoded == 0).mean(), (values == 0).mean())
    assert np.isclose((decoded == 250.0).mean(), (values == 250.0).mean())
    tail = values > 0
    assert np.all(np.abs(decoded[tail] - values[tail]) <= 0.2 * values[tail] + 30)


def test_rare_categories_share_one_token(adult_small):
    tokenizer = TokenTransformer(rare_min_count=5).fit(adult_small)
    column = next(c for c in tokenizer.columns_ if c.name == "native-country")
    assert column.rare and all((adult_small["native-country"] == r).sum() < 5 for r in column.rare)
    decoded = tokenizer.decode(tokenizer.encode(adult_small), seed=1)
    assert set(decoded["native-country"].dropna()) <= set(adult_small["native-country"].dropna())


def test_samples_have_training_dtypes(ar, adult_small):
    synthetic = ar.sample(1000, seed=1)
    assert synthetic.dtypes.equals(adult_small.dtypes)
    assert synthetic["age"].between(17, 90).all()
    assert abs((synthetic["sex"] == "Male").mean() - (adult_small["sex"] == "Male").mean()) < 0.08


def test_same_seed_same_samples(adult_small):
    kwargs = dict(epochs=2, seed=3, device="cpu")
    a = sg.TabularAR(**kwargs).fit(adult_small).sample(300, seed=2)
    b = sg.TabularAR(**kwargs).fit(adult_small).sample(300, seed=2)
    pd.testing.assert_frame_equal(a, b)


def test_conditioning_on_three_columns_hits_every_row(ar):
    condition = {"sex": "Female", "income": ">50K", "education": "Masters"}
    rows = ar.sample(200, conditions=condition, seed=0)
    assert len(rows) == 200
    for column, value in condition.items():
        assert (rows[column] == value).all()


def test_conditioning_on_a_number_and_a_range(ar):
    rows = ar.sample(100, conditions={"education-num": 13, "age": (40, 50)}, seed=1)
    assert (rows["education-num"] == 13).all() and rows["age"].between(40, 50).all()


def test_imputation_fills_only_missing_cells(ar, adult_small):
    seeds = adult_small.head(50).copy()
    holes = np.zeros(seeds.shape, dtype=bool)
    rng = np.random.default_rng(0)
    holes[rng.random(seeds.shape) < 0.3] = True
    holes[:, list(seeds.columns).index("income")] = False
    damaged = seeds.mask(holes)
    filled = ar.impute(damaged, seed=0)
    assert filled.shape == seeds.shape
    known = ~holes & seeds.notna().to_numpy()
    assert (filled.to_numpy()[known] == seeds.to_numpy()[known]).all()
    assert filled.drop(columns=["workclass", "occupation", "native-country"]).notna().all().all()


def test_log_prob_prefers_real_rows_to_shuffled_ones(ar, adult_small):
    real = adult_small.head(500)
    rng = np.random.default_rng(0)
    shuffled = real.apply(lambda col: col.to_numpy()[rng.permutation(len(col))])
    shuffled = shuffled.astype(real.dtypes.to_dict())
    assert ar.log_prob(real).mean() > ar.log_prob(shuffled).mean() + 1.0
    assert np.isfinite(ar.log_prob(real)).all()


def test_default_training_stops_early_and_keeps_the_best(adult_small):
    model = sg.TabularAR(epochs=60, seed=0, device="cpu", learning_rate=0.05).fit(adult_small)
    log = model.training_log
    assert all("val_loss" in e for e in log.epochs)
    assert log.stopped_early and len(log.epochs) < 60
    assert log.best_epoch == min(log.epochs, key=lambda e: e["val_loss"])["epoch"]


def test_time_budget_stops_training(adult_small):
    model = sg.TabularAR(epochs=500, max_training_time=1e-9, device="cpu").fit(adult_small)
    assert model.training_log.stopped_early and len(model.training_log.epochs) == 1


def test_save_load(ar, tmp_path):
    path = tmp_path / "ar.synth"
    ar.save(str(path))
    loaded = sg.load_model(str(path))
    pd.testing.assert_frame_equal(loaded.sample(200, seed=5), ar.sample(200, seed=5))
    rows = ar.sample(50, seed=2)
    np.testing.assert_allclose(loaded.log_prob(rows), ar.log_prob(rows))


def test_mixed_kinds(mixed_frame):
    model = sg.TabularAR(epochs=2, device="cpu").fit(mixed_frame)
    synthetic = model.sample(200)
    assert synthetic.dtypes.equals(mixed_frame.dtypes)
    assert synthetic["user_id"].is_unique and synthetic["score"].isna().any()


def test_bad_input(ar, adult_small):
    with pytest.raises(ConfigError, match="flexible_share"):
        sg.TabularAR(flexible_share=2).fit(adult_small)
    with pytest.raises(ConfigError, match="max_training_time"):
        sg.TabularAR(max_training_time=-1).fit(adult_small)
    frame = adult_small.head(5).copy()
    frame.loc[0, "race"] = "Martian"
    with pytest.raises(DataError, match="'race'.*'Martian'"):
        ar.log_prob(frame)


# ---------------------------------------------------------------- the blocked context
def _masked_reference(network, tokens: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """Logits through the O(n^2) causal mask over the placed embeddings, for comparison."""
    placed = network.placed(network.embed(tokens))
    visible = (ranks.unsqueeze(2) > ranks.unsqueeze(1)).to(placed.dtype)
    return network._heads((visible @ placed).transpose(0, 1), slice(None))


def _random_batch(sizes: list[int], rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.stack([torch.randint(0, s, (rows,), generator=generator) for s in sizes], 1)
    ranks = torch.stack([torch.randperm(len(sizes), generator=generator) for _ in range(rows)])
    return tokens, ranks


@pytest.mark.parametrize("blocks", [None, 1, 3, 7, 40])
def test_prefix_sum_context_equals_the_causal_mask(blocks):
    from synthgen.backends.tabular_ar import ColumnHeadsNetwork

    torch.manual_seed(0)
    sizes = [3, 5, 4, 2, 6, 3, 2, 9]
    network = ColumnHeadsNetwork(sizes, 4, 8, blocks=blocks)
    tokens, ranks = _random_batch(sizes, 32, seed=1)
    got, want = network(tokens, ranks), _masked_reference(network, tokens, ranks)
    finite = torch.isfinite(want)
    assert torch.equal(torch.isfinite(got), finite)
    torch.testing.assert_close(got[finite], want[finite], rtol=1e-5, atol=1e-5)


def test_a_target_never_sees_its_own_token_or_later_ones():
    """Changing tokens ranked at or after target i leaves i's logits exactly unchanged."""
    from synthgen.backends.tabular_ar import ColumnHeadsNetwork

    torch.manual_seed(0)
    sizes = [4] * 12
    network = ColumnHeadsNetwork(sizes, 3, 8, blocks=5)
    tokens, ranks = _random_batch(sizes, 16, seed=2)
    base = network(tokens, ranks)
    changed = tokens.clone()
    target = 4
    later = ranks >= ranks[:, target : target + 1]  # the target and what comes after it
    changed[later] = (changed[later] + 1) % 4
    assert torch.equal(network(changed, ranks)[target], base[target])
    assert not torch.equal(network(changed, ranks), base)  # earlier targets did see a change


def test_context_cost_grows_linearly_with_the_number_of_sub_columns():
    from synthgen.backends.tabular_ar import ColumnHeadsNetwork

    def first_layer(n: int, blocks: int | None) -> int:
        return ColumnHeadsNetwork([3] * n, 8, 16, blocks=blocks).w1.numel()

    assert first_layer(64, 16) == 2 * first_layer(32, 16)  # linear with a cap
    assert first_layer(64, None) == 4 * first_layer(32, None)  # quadratic without one
    assert first_layer(16, 16) == first_layer(16, None)  # narrow tables: the same network


def test_model_files_from_before_context_blocks_load_and_sample_the_same_rows():
    """tests/data/tabular_ar_before_context_blocks.*: written by the code before this
    parameter existed (21 sub-columns, one context slot each), with 20 rows it sampled."""
    from pathlib import Path

    data = Path(__file__).parent / "data"
    model = sg.load_model(data / "tabular_ar_before_context_blocks.synth", device="cpu")
    assert model.get_params()["context_blocks"] is None
    assert model.network_.blocks == len(model.transformer_.sizes) > 16
    expected = pd.read_csv(data / "tabular_ar_before_context_blocks.samples.csv")
    got = model.sample(20, seed=3)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)


def test_wide_table_trains_with_shared_context_slots():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 3, 600)
    frame = pd.DataFrame(
        {f"q{i}": (base + rng.integers(0, 2, 600) * (i % 2)) % 3 for i in range(30)}
    )
    model = sg.TabularAR(
        epochs=10, batch_size=64, seed=0, context_blocks=8, early_stopping_patience=None
    ).fit(frame)
    assert model.network_.blocks == 8 and model.network_.w1.shape[1] == 8 * model.embedding_dim
    syn = model.sample(400, seed=1)
    # the shared latent is learned: columns stay correlated as in the data
    real_corr = frame.corr().to_numpy()[np.triu_indices(30, 1)].mean()
    syn_corr = syn.astype(float).corr().to_numpy()[np.triu_indices(30, 1)].mean()
    assert real_corr > 0.3 and syn_corr > 0.8 * real_corr
    with pytest.raises(ConfigError, match="context_blocks"):
        sg.TabularAR(context_blocks=0).fit(frame)
