"""Empirical privacy attacks: distance to closest record, NNDR, exact copies, membership
inference.

Everything here is a nearest-neighbour question, answered by chunked torch kernels
instead of SDMetrics' pandas cross joins so that 50k x 50k tables take seconds, not hours.

The distance is SDMetrics 0.32's DCR distance (``single_table.privacy.dcr_utils``), so
``dcr_overfitting`` reproduces ``DCROverfittingProtection``: the mean over columns of

- numerical / datetime: ``min(|a - b| / range, 1)`` where ``range`` is the reference
  table's max - min (a column with zero range scores 1 for any difference); one null
  scores 1, two nulls score 0;
- categorical / boolean: 0 when equal (two nulls are equal), else 1.

Id columns are ignored. How it is computed fast and exactly: categorical mismatches are
``n_cat - onehot_q @ onehot_r.T`` (a matrix product); numerical terms are a single
``torch.cdist(p=1)`` on range-scaled values, which needs no clipping while the query
row lies inside the reference range; rows outside the range, and columns with nulls,
take back the clipped excess element-wise (only those rows and columns), and columns
with nulls take an element-wise path with the null rules. A zero-range column is
equality, so it joins the categorical block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from synthgen.core.errors import DataError
from synthgen.core.kinds import SchemaLike
from synthgen.core.values import category_keys as _keys
from synthgen.core.values import numeric_values as _as_float

_CHUNK_ELEMENTS = 1 << 24  # ~64 MB of float32 per distance block


@dataclass
class _Prepared:
    """Query and reference rows in the form the distance kernels want."""

    n_columns: int
    q_clean: torch.Tensor  # numerical columns without nulls, scaled by the reference range
    r_clean: torch.Tensor
    q_null: torch.Tensor  # numerical columns with nulls (NaN kept)
    r_null: torch.Tensor
    q_onehot: torch.Tensor  # categorical (and zero-range) columns, one-hot
    r_onehot: torch.Tensor
    n_cat: int
    outside: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def _prepare(
    query: pd.DataFrame,
    reference: pd.DataFrame,
    schema: SchemaLike,
    dtype: torch.dtype,
    scale: pd.DataFrame | None = None,
) -> _Prepared:
    clean_q, clean_r, null_q, null_r, cat_q, cat_r = [], [], [], [], [], []
    n_columns = 0
    for spec in schema:
        if spec.kind == "id":
            continue
        n_columns += 1
        name = spec.name
        if spec.kind in ("numerical", "datetime"):
            q, r = _as_float(query[name]), _as_float(reference[name])
            ruler = r if scale is None else _as_float(scale[name])
            finite = ruler[~np.isnan(ruler)]
            span = float(finite.max() - finite.min()) if len(finite) else 0.0
            if span == 0 or not math.isfinite(span):
                cat_q.append(_keys(pd.Series(q)))
                cat_r.append(_keys(pd.Series(r)))
                continue
            lo = float(finite.min())
            qs, rs = (q - lo) / span, (r - lo) / span
            if np.isnan(qs).any() or np.isnan(rs).any():
                null_q.append(qs)
                null_r.append(rs)
            else:
                clean_q.append(qs)
                clean_r.append(rs)
        else:
            cat_q.append(_keys(query[name]))
            cat_r.append(_keys(reference[name]))
    if n_columns == 0:
        raise DataError("no columns to measure distances on (every column is an id column)")

    def stack(cols: list[np.ndarray], n: int) -> torch.Tensor:
        if not cols:
            return torch.zeros((n, 0), dtype=dtype)
        return torch.from_numpy(np.column_stack(cols)).to(dtype)

    nq, nr = len(query), len(reference)
    onehot_q, onehot_r = [], []
    for kq, kr in zip(cat_q, cat_r, strict=True):
        codes, uniques = pd.factorize(pd.concat([kq, kr], ignore_index=True), use_na_sentinel=False)
        eye = np.eye(len(uniques), dtype="float32")
        onehot_q.append(eye[codes[:nq]])
        onehot_r.append(eye[codes[nq:]])
    prepared = _Prepared(
        n_columns=n_columns,
        q_clean=stack(clean_q, nq),
        r_clean=stack(clean_r, nr),
        q_null=stack(null_q, nq),
        r_null=stack(null_r, nr),
        q_onehot=torch.from_numpy(np.hstack(onehot_q)).to(dtype)
        if onehot_q
        else torch.zeros((nq, 0), dtype=dtype),
        r_onehot=torch.from_numpy(np.hstack(onehot_r)).to(dtype)
        if onehot_r
        else torch.zeros((nr, 0), dtype=dtype),
        n_cat=len(cat_q),
    )
    qc = prepared.q_clean
    prepared.outside = (
        ((qc < 0) | (qc > 1)).any(dim=1).numpy() if qc.shape[1] else np.zeros(nq, dtype=bool)
    )
    return prepared


def _null_terms(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Numerical columns with nulls: clipped difference, 1 for one null, 0 for two."""
    out = torch.zeros((q.shape[0], r.shape[0]), dtype=q.dtype, device=q.device)
    for j in range(q.shape[1]):
        qn, rn = torch.isnan(q[:, j]), torch.isnan(r[:, j])
        diff = (torch.nan_to_num(q[:, j : j + 1]) - torch.nan_to_num(r[:, j])).abs_()
        diff.clamp_max_(1.0)
        diff.masked_fill_(qn[:, None] | rn[None, :], 1.0)
        diff.masked_fill_(qn[:, None] & rn[None, :], 0.0)
        out.add_(diff)
    return out


def _distance_block(p: _Prepared, start: int, stop: int) -> torch.Tensor:
    """DCR distances of query rows ``start:stop`` to every reference row.

    Written to touch the (chunk x reference) block as few times as possible: the
    ``cdist`` result is the accumulator and the categorical matches are subtracted into
    it by ``addmm_``.
    """
    n = stop - start
    m = p.r_clean.shape[0]
    if p.q_clean.shape[1]:
        qc = p.q_clean[start:stop]
        total = torch.cdist(qc.unsqueeze(0), p.r_clean.unsqueeze(0), p=1).squeeze(0)
        if p.outside[start:stop].any():
            # cdist did not clip: for each (row, column) outside the reference range take
            # back the excess, |d| - min(|d|, 1) = max(|d| - 1, 0). Only those rows and
            # columns are touched element-wise.
            out_cols = (qc < 0) | (qc > 1)
            for j in torch.nonzero(out_cols.any(dim=0)).flatten().tolist():
                idx = torch.nonzero(out_cols[:, j]).flatten()
                excess = (qc[idx, j : j + 1] - p.r_clean[:, j]).abs_().sub_(1.0).clamp_min_(0.0)
                total.index_add_(0, idx, excess, alpha=-1.0)
    else:
        total = torch.zeros((n, m), dtype=p.q_clean.dtype, device=p.q_clean.device)
    if p.q_null.shape[1]:
        total += _null_terms(p.q_null[start:stop], p.r_null)
    if p.n_cat:
        total.addmm_(p.q_onehot[start:stop], p.r_onehot.T, alpha=-1.0)
        total.add_(float(p.n_cat))
    return total.mul_(1.0 / p.n_columns)


def _device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" picks CUDA when present: the search is pure tensor work."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def nearest_distances(
    query: pd.DataFrame,
    reference: pd.DataFrame,
    schema: SchemaLike,
    k: int = 1,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    scale: pd.DataFrame | None = None,
) -> np.ndarray:
    """Distances (SDMetrics DCR distance) from each query row to its ``k`` closest
    reference rows, sorted ascending; shape ``(len(query), k)``.

    Numbers are scaled by the reference's range (SDMetrics), or by ``scale``'s when
    given: distances to two references are only comparable on one ruler.
    """
    if len(reference) == 0 or len(query) == 0:
        raise DataError("nearest-neighbour search needs non-empty query and reference tables")
    k = min(k, len(reference))
    p = _prepare(query, reference, schema, dtype, scale)
    dev = _device(device)
    if dev.type != "cpu":
        for name in ("q_clean", "r_clean", "q_null", "r_null", "q_onehot", "r_onehot"):
            setattr(p, name, getattr(p, name).to(dev))
    chunk = max(1, _CHUNK_ELEMENTS // max(len(reference), 1))
    out = []
    with torch.no_grad():
        for start in range(0, len(query), chunk):
            stop = min(start + chunk, len(query))
            block = _distance_block(p, start, stop)
            out.append(torch.topk(block, k, dim=1, largest=False).values.clamp_min_(0).cpu())
    return torch.cat(out).double().numpy()


def knn_euclidean(
    query: np.ndarray,
    reference: np.ndarray,
    k: int = 1,
    exclude_self: bool = False,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean k nearest neighbours (distances, indices) via chunked matrix products.

    With ``exclude_self`` the query *is* the reference and each row's own match (the
    first neighbour) is dropped.
    """
    dev = _device(device)
    q = torch.from_numpy(np.ascontiguousarray(query, dtype="float32")).to(dev)
    r = torch.from_numpy(np.ascontiguousarray(reference, dtype="float32")).to(dev)
    kk = min(k + int(exclude_self), len(r))
    r_sq = (r * r).sum(1)
    chunk = max(1, _CHUNK_ELEMENTS // max(len(r), 1))
    dists, idxs = [], []
    with torch.no_grad():
        for start in range(0, len(q), chunk):
            qc = q[start : start + chunk]
            d2 = (qc * qc).sum(1, keepdim=True) + r_sq[None, :] - 2.0 * (qc @ r.T)
            if exclude_self:
                rows = torch.arange(len(qc), device=dev)
                d2[rows, rows + start] = -1.0  # make self the first neighbour
            values, indices = torch.topk(d2, kk, dim=1, largest=False)
            if exclude_self:
                values, indices = values[:, 1:], indices[:, 1:]
            dists.append(values.clamp_min_(0).sqrt_().cpu())
            idxs.append(indices.cpu())
    return torch.cat(dists).double().numpy(), torch.cat(idxs).numpy()


# ----------------------------------------------------------------- attacks
@dataclass
class DCRResult:
    """DCR overfitting protection (SDMetrics ``DCROverfittingProtection`` definition)."""

    closer_to_training: float  # share of synthetic rows closer to training than holdout
    score: float  # min(2 * (1 - closer_to_training), 1): 1 = no sign of overfitting
    dcr_training: np.ndarray
    dcr_holdout: np.ndarray
    n_training: int = 0  # rows of the training table given
    n_holdout: int = 0  # rows of the holdout table given
    n_used: int | None = None  # rows of each reference table measured to (None: as given)


def balanced_references(
    train: pd.DataFrame, holdout: pd.DataFrame, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two reference tables cut to the same number of rows (seeded, order kept).

    "Closer to a training row than to any holdout row" is a coin flip for an honest
    generator only when both tables are equally large: with 26,000 training rows and
    6,561 holdout rows a row drawn from the real distribution is closer to the larger
    table about 80% of the time. The larger table is therefore subsampled, without
    replacement, to the smaller one's size; equal-size tables are returned as given.
    """
    n = min(len(train), len(holdout))
    rng = np.random.default_rng(seed)

    def cut(df: pd.DataFrame) -> pd.DataFrame:
        if len(df) == n:
            return df
        return df.iloc[np.sort(rng.choice(len(df), n, replace=False))]

    return cut(train), cut(holdout)


def dcr_overfitting(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    holdout: pd.DataFrame,
    schema: SchemaLike,
    seed: int = 0,
    balance: bool = True,
    common_scale: bool = True,
) -> DCRResult:
    """Share of synthetic rows strictly closer to a training row than to any holdout row.

    With ``balance`` (the default) the larger of ``train`` / ``holdout`` is first
    subsampled to the smaller one's size (``balanced_references``, seeded by ``seed``),
    so that 0.5 is the ideal whatever the split; near 1 means the generator copies its
    training rows. ``balance=False`` measures against the tables as given, which is
    SDMetrics' definition and only meaningful for equal sizes (equal sizes give the
    same answer either way).

    With ``common_scale`` (the default) numbers are scaled by the range of both
    reference tables together. SDMetrics scales each by its own range
    (``common_scale=False`` reproduces it), which favours the table with the wider
    range: one extreme value in the holdout shrinks every distance to it. On
    credit_default's heavy-tailed amounts, real rows that neither table holds were
    "closer to training" 27% of the time that way, 50% on one ruler.
    """
    ref_train, ref_hold = balanced_references(train, holdout, seed) if balance else (train, holdout)
    ruler = pd.concat([ref_train, ref_hold], ignore_index=True) if common_scale else None
    d_train = nearest_distances(synthetic, ref_train, schema, scale=ruler)[:, 0]
    d_hold = nearest_distances(synthetic, ref_hold, schema, scale=ruler)[:, 0]
    closer = float(np.mean(d_train < d_hold))
    return DCRResult(
        closer,
        min((1.0 - closer) * 2.0, 1.0),
        d_train,
        d_hold,
        n_training=len(train),
        n_holdout=len(holdout),
        n_used=len(ref_train) if balance else None,
    )


def nndr(synthetic: pd.DataFrame, train: pd.DataFrame, schema: SchemaLike) -> np.ndarray:
    """Nearest-neighbour distance ratio d1/d2 of each synthetic row to the training rows.

    Low ratios mean a synthetic row sits next to one training record and far from the
    rest: the record is singled out. An exact copy (d1 = 0) has ratio 0.
    """
    d = nearest_distances(synthetic, train, schema, k=2)
    if d.shape[1] < 2:
        return np.zeros(len(d))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(d[:, 0] == 0, 0.0, d[:, 0] / d[:, 1])
    return ratio


def exact_copy_rate(synthetic: pd.DataFrame, train: pd.DataFrame, schema: SchemaLike) -> float:
    """Share of synthetic rows identical (every non-id column, nulls equal) to a training row."""
    cols = [s.name for s in schema if s.kind != "id"]
    both = pd.concat([train[cols], synthetic[cols]], ignore_index=True)
    hashes = pd.util.hash_pandas_object(both, index=False).to_numpy()
    train_h, syn_h = hashes[: len(train)], hashes[len(train) :]
    return float(np.isin(syn_h, train_h).mean()) if len(syn_h) else math.nan


def membership_inference_auc(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: SchemaLike,
    max_rows: int | None = 5000,
    seed: int = 0,
) -> float:
    """ROC AUC of a distance attack telling training rows (members) from holdout rows.

    The attacker only sees the synthetic table and flags a record as a member when a
    synthetic row lies close to it. Equal numbers of members and non-members are drawn
    (at most ``max_rows`` each). 0.5 = no leakage, 1 = every member is recognisable.
    """
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = min(len(train), len(holdout))
    if max_rows:
        n = min(n, max_rows)
    if n == 0:
        raise DataError("membership inference needs non-empty training and holdout tables")
    members = train.iloc[rng.choice(len(train), n, replace=False)]
    others = holdout.iloc[rng.choice(len(holdout), n, replace=False)]
    candidates = pd.concat([members, others], ignore_index=True)
    d = nearest_distances(candidates, synthetic, schema)[:, 0]
    labels = np.r_[np.ones(n), np.zeros(n)]
    return float(roc_auc_score(labels, -d))
